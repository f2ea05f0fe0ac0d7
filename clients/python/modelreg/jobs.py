"""What the deployment jobs add to push and pull: the pull marker and the push's inputs from files.

An init container pulls `team/model@production` into a volume and a model server starts on it.
The server must know which version it serves without asking the registry, so the pull writes a
small JSON marker next to the files: the version's name, number and uid, and its manifest
digest, which changes whenever any file's path, size or content does. The marker is written
last, after every file is verified and in place, and replaced atomically, so a marker that
exists always describes complete files.

A training Job pushes with metadata it wrote to files (params, metrics, lineage as JSON): these
are read and checked here, so a malformed file is a usage error naming the option before
anything is sent.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from modelregistry.v1 import model_pb2

from modelreg.results import PullResult

MARKER_FORMAT = 1


class MarkerInTheWay(ValueError):
    """The marker's path is one of the version's own files."""


def marker(result: PullResult, ref: str) -> dict[str, Any]:
    """The marker's content: deterministic, so a repeated pull rewrites the same bytes."""
    version = result.version
    return {
        "format": MARKER_FORMAT,
        "ref": ref,
        "model_version": version.name,
        "number": version.number,
        "uid": version.uid,
        "manifest_digest": version.manifest_digest,
        "files": len(version.files),
        "total_bytes": sum(f.size_bytes for f in version.files),
    }


def write_marker(path: Path, result: PullResult, ref: str) -> None:
    """Write the marker for `result` at `path` (write, then rename). Blocking."""
    target = path.expanduser().absolute()
    root = result.destination.resolve()
    if target.resolve() in {root.joinpath(*f.path.split("/")) for f in result.version.files}:
        raise MarkerInTheWay(f"{path} is a file of {result.version.name}; choose another marker path")
    content = json.dumps(marker(result, ref), indent=2, sort_keys=True) + "\n"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if target.read_text(encoding="utf-8") == content:
            return  # a repeated pull: a server watching the file sees no change
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    try:
        temporary.write_text(content, encoding="utf-8")
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def metrics_from(value: Any) -> dict[str, float]:
    """A metrics file's content: a JSON object of finite numbers."""
    if not isinstance(value, dict):
        raise ValueError("must hold a JSON object of metric names to numbers")
    metrics = {}
    for key, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise ValueError(f"metric {str(key)[:64]!r} is not a finite number")
        metrics[str(key)] = float(number)
    return metrics


def lineage_from(value: Any) -> dict[str, Any]:
    """A lineage file's content: the API's `Lineage` in its JSON form, e.g.
    `{"source_commit": "...", "datasets": [{"uri": "s3://...", "digest": "sha256:...", "role": "train"}]}`.
    """
    if not isinstance(value, dict):
        raise ValueError("must hold a JSON object (the Lineage message in JSON form)")
    try:
        json_format.ParseDict(value, model_pb2.Lineage())
    except json_format.ParseError as exc:
        raise ValueError(str(exc)[:200]) from None
    return value
