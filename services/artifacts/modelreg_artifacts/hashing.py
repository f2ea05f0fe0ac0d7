"""The running SHA-256 of each upload session this process is receiving, between streams.

hashlib's SHA-256 state cannot be serialized, and no maintained PyPI package offers one whose
state can be (checked November 2026: `rehash` (2022) patches OpenSSL internals, `hashstate`
(2018) and `sha256` (2024, one release) are unmaintained). So the state lives only in memory:
a snapshot taken at every committed part boundary lets a stream that broke resume on this
replica with its hash intact. A replica without the snapshot (after a crash, or when the client
moved to another replica) verifies differently; see `modelreg_artifacts.uploads`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

# One snapshot is ~0.5 KiB; this bounds memory even if clients abandon many sessions here.
MAX_SNAPSHOTS = 20_000


class LiveHashes:
    def __init__(self, capacity: int = MAX_SNAPSHOTS):
        self._snapshots: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()
        self._capacity = capacity

    def save(self, upload_id: str, offset: int, hasher: hashlib._Hash) -> None:
        """Remember the hash of the first `offset` bytes (the caller must not update `hasher` again)."""
        self._snapshots[upload_id] = (offset, hasher)
        self._snapshots.move_to_end(upload_id)
        while len(self._snapshots) > self._capacity:
            self._snapshots.popitem(last=False)

    def resume(self, upload_id: str, offset: int) -> hashlib._Hash | None:
        """A hasher that has seen exactly the first `offset` bytes, or None if this process has none."""
        if offset == 0:
            return hashlib.sha256()
        saved = self._snapshots.get(upload_id)
        if saved is None or saved[0] != offset:
            return None
        return saved[1].copy()

    def forget(self, upload_id: str) -> None:
        self._snapshots.pop(upload_id, None)
