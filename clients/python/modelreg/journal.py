"""Notes in the cache directory that let an interrupted transfer continue: one JSON file per key.

Uploads note which upload session holds a file's committed bytes (`<cache>/uploads`), pushes which
version a push of exactly this content created (`<cache>/pushes`). A note only saves work: the
service is asked again before any note is trusted, so a journal that cannot be read or written (a
read-only cache, a torn file) costs the resumption, never the transfer.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class Journal:
    """`<root>/<key>.json` per unfinished transfer, each replaced whole (write, then rename)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def load(self, key: str) -> dict[str, Any] | None:
        """The record saved under `key`; None when there is none or it cannot be read."""
        try:
            record = json.loads((self._root / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def save(self, key: str, record: Mapping[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self._root.mkdir(parents=True, exist_ok=True)
            temporary = self._root / f".{key}.{uuid.uuid4().hex}"
            temporary.write_text(json.dumps(dict(record)))
            os.replace(temporary, self._root / f"{key}.json")

    def remove(self, key: str) -> None:
        with contextlib.suppress(OSError):
            (self._root / f"{key}.json").unlink()
