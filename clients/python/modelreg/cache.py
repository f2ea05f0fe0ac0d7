"""A local content-addressed store of downloaded blobs, and placing them under a destination.

Layout under the cache root (`~/.cache/modelreg`, or `MODELREG_CACHE_DIR`):

    blobs/sha256/<hex>     complete, verified blobs (read-only: they are hard-linked into
                           destinations, and a write through one link would change all others)
    partial/<hex>          a download in progress; a later pull continues from its end

A blob is re-hashed every time it is used, so a cache damaged on disk costs a download, never
a wrong file. Every file is written under a temporary name and renamed into place, so no name
that a reader looks at ever holds half a file.

A partial download is shared between processes through a POSIX file lock (`fcntl.flock`). Where
there is no `fcntl` (Windows), `import modelreg` still works and every download goes to a private
file instead, so an interrupted pull starts those files over rather than resuming them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

from modelreg.local_files import sha256_of

_fcntl: ModuleType | None
try:
    import fcntl as _fcntl
except ImportError:  # not POSIX: partial downloads cannot be locked, so they are never shared
    _fcntl = None

_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


@dataclass
class PartialBlob:
    """An open, exclusively held file that a download appends to."""

    path: Path
    stream: BinaryIO
    # Resumable files stay after a failure so the next attempt continues; private ones do not.
    resumable: bool


class BlobCache:
    def __init__(self, root: Path, *, read_only_blobs: bool = True) -> None:
        self.root = root
        self._blobs = root / "blobs" / "sha256"
        self._partial = root / "partial"
        self._read_only_blobs = read_only_blobs

    def blob_path(self, sha256: str) -> Path:
        return self._blobs / sha256

    def find(self, sha256: str, size_bytes: int) -> Path | None:
        """The cached blob with this content, verified now; a damaged one is removed. Blocking."""
        path = self.blob_path(sha256)
        try:
            if path.stat().st_size == size_bytes and sha256_of(path) == (sha256, size_bytes):
                return path
        except FileNotFoundError:
            return None
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None

    @contextlib.contextmanager
    def partial(self, sha256: str) -> Iterator[PartialBlob]:
        """The partial download of a blob, locked against other processes. Blocking.

        When another process is downloading the same blob right now, this one downloads into a
        private file instead of waiting: both finish, and the second rename is harmless.
        """
        self._partial.mkdir(parents=True, exist_ok=True)
        path = self._partial / sha256
        stream: BinaryIO = path.open("a+b")
        if _locked(stream):
            partial = PartialBlob(path, stream, resumable=True)
        else:
            stream.close()
            path = self._partial / f"{sha256}.{uuid.uuid4().hex}"
            stream = path.open("w+b")
            partial = PartialBlob(path, stream, resumable=False)
        try:
            yield partial
        except BaseException:
            if not partial.resumable:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            raise
        finally:
            stream.close()

    def commit(self, partial: PartialBlob, sha256: str) -> Path:
        """Move a complete, verified download into the store. Blocking."""
        partial.stream.flush()
        self._blobs.mkdir(parents=True, exist_ok=True)
        if self._read_only_blobs:
            os.chmod(partial.path, _READ_ONLY)
        target = self.blob_path(sha256)
        os.replace(partial.path, target)
        return target

    def discard(self, partial: PartialBlob) -> None:
        partial.stream.seek(0)
        partial.stream.truncate()


def _locked(stream: BinaryIO) -> bool:
    """Whether this process now holds `stream`'s file exclusively (until it is closed)."""
    if _fcntl is None:
        return False
    try:
        _fcntl.flock(stream.fileno(), _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def place(blob: Path, target: Path, *, copy: bool) -> None:
    """Make `target` hold the blob's content: a hard link (no bytes copied) or a copy. Blocking.

    Links fall back to copies across file systems or where links are not allowed. The new file
    appears under `target` only once complete.
    """
    temporary = target.with_name(f".{target.name}.modelreg-{uuid.uuid4().hex[:12]}")
    try:
        if copy:
            shutil.copyfile(blob, temporary)
        else:
            try:
                os.link(blob, temporary)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                    raise
                shutil.copyfile(blob, temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def same_file(blob: Path, target: Path) -> bool:
    """True when `target` already is a hard link to `blob` (a repeated pull): nothing to do."""
    try:
        return os.path.samestat(blob.stat(), target.stat())
    except FileNotFoundError:
        return False
