"""What a transfer reports while it runs, for progress bars and logs.

The SDK calls these from the thread that runs its event loop (the caller's, for `AsyncClient`;
a background thread, for `Client`), so an implementation must be quick and must not block.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Direction(StrEnum):
    # Reading local files to compute their SHA-256 before a push.
    HASH = "hash"
    UPLOAD = "upload"
    DOWNLOAD = "download"


class Outcome(StrEnum):
    """How a file reached its destination."""

    HASHED = "hashed"

    UPLOADED = "uploaded"
    # Uploaded, continuing an upload session that an interrupted push left: only the bytes the
    # service had not committed were sent.
    RESUMED = "resumed"
    # The registry already stored these bytes (in any model or version): none were sent.
    DEDUPLICATED = "deduplicated"
    # Already in the version's manifest with the same digest (an interrupted push resumed).
    ALREADY_PRESENT = "already-present"
    DOWNLOADED = "downloaded"
    FROM_CACHE = "from-cache"
    # Already in the pull's destination with the same digest (a repeated pull, an init
    # container restarted): neither downloaded nor read from the cache.
    IN_PLACE = "in-place"


class TransferProgress(Protocol):
    def begin(self, direction: Direction, files: int, total_bytes: int) -> None: ...

    def file_started(self, path: str, size_bytes: int) -> None: ...

    # Bytes done since the last call. Uploads never go backwards (bytes sent again after a
    # broken stream are not reported twice); a download that starts a file over reports the
    # bytes it drops as a negative count.
    def advance(self, nbytes: int) -> None: ...

    def file_done(self, path: str, size_bytes: int, outcome: Outcome) -> None: ...

    def retrying(self, path: str, reason: str, delay: float) -> None: ...

    def end(self) -> None: ...


class NoProgress:
    """The default: report nothing."""

    def begin(self, direction: Direction, files: int, total_bytes: int) -> None:
        pass

    def file_started(self, path: str, size_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def file_done(self, path: str, size_bytes: int, outcome: Outcome) -> None:
        pass

    def retrying(self, path: str, reason: str, delay: float) -> None:
        pass

    def end(self) -> None:
        pass
