"""FerretDB v1 through the modelreg-ferretdb wrapper, on a private Unix socket (or a port when asked)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pymongo import MongoClient

from modelreg_local.stores.endpoints import env_value
from modelreg_local.stores.errors import StoreStartError
from modelreg_local.stores.ports import LOCALHOST
from modelreg_local.stores.processes import ServerProcess

ENV_FERRETDB_BIN = "MODELREG_FERRETDB_BIN"

_REPO_ROOT = Path(__file__).resolve().parents[4]
_FERRETDB_BIN_NAME = "modelreg-ferretdb"
# A Unix socket address holds 108 bytes on Linux, the terminating NUL included.
_SOCKET_PATH_MAX = 107


def mongodb_socket_uri(path: Path) -> str:
    """The MongoDB URI of a server on a Unix socket: the percent-encoded absolute path as the host.

    pymongo and mongosh read a host ending in ".sock" as such a path, so the socket's name must end so.
    """
    return f"mongodb://{quote(str(path), safe='')}/"


def _socket_path_fits(path: Path) -> bool:
    return len(os.fsencode(path)) <= _SOCKET_PATH_MAX


def _short_socket_dir(needed: str) -> Path:
    """A new private (0700) directory in a short temporary place whose path leaves room for `needed`."""
    # mkdtemp makes a directory of mode 0700 under a name nobody can predict, so a shared /tmp is safe.
    candidates = (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp")  # noqa: S108
    roots = dict.fromkeys(root for root in candidates if root)
    for root in roots:
        try:
            directory = Path(tempfile.mkdtemp(prefix="modelreg-", dir=root))
        except OSError:
            continue
        if _socket_path_fits(directory / needed):
            return directory
        directory.rmdir()
    raise StoreStartError(
        f"no temporary directory ({', '.join(roots)}) is short enough for a Unix socket path of at most "
        f"{_SOCKET_PATH_MAX} bytes"
    )


def default_ferretdb_binary(env: Mapping[str, str] = os.environ) -> Path:
    """$MODELREG_FERRETDB_BIN, else <repo>/.tools/bin/modelreg-ferretdb, else one found on PATH."""
    override = env_value(env, ENV_FERRETDB_BIN)
    if override is not None:
        return Path(override)
    in_repo = _REPO_ROOT / ".tools" / "bin" / _FERRETDB_BIN_NAME
    if in_repo.exists():
        return in_repo
    on_path = shutil.which(_FERRETDB_BIN_NAME)
    return Path(on_path) if on_path else in_repo


class FerretDBServer(ServerProcess):
    """FerretDB v1 over SQLite files in <data_dir>/sqlite, behind the write-lock proxy of modelreg-ferretdb.

    Clients reach the proxy on the Unix socket <data_dir>/sockets/mongodb.sock (mode 0600 in a directory of
    mode 0700: this user only), or, when a port is given, on 127.0.0.1:<port>, which every local user can
    reach. FerretDB itself listens only on backend.sock beside it, so nothing goes around the write lock.
    When the data dir is too deep for a socket path, the sockets go to a private temporary directory.
    """

    name = "FerretDB"
    _SOCKET = "mongodb.sock"  # the proxy: what clients connect to
    _BACKEND_SOCKET = "backend.sock"  # FerretDB itself: only the proxy connects (same length as _SOCKET)

    def __init__(
        self, data_dir: Path, *, port: int = 0, binary: Path | None = None, log_level: str = "error"
    ) -> None:
        super().__init__(data_dir, binary if binary is not None else default_ferretdb_binary())
        self.port = port  # 0: the Unix socket
        # "error" by default: FerretDB logs every failed command at WARN with its whole reply (pymongo's
        # unsupported endSessions at each client close, every duplicate-key error).
        self.log_level = log_level
        self.socket_dir: Path | None = None
        self._temporary_socket_dir = False
        self._client: MongoClient[dict[str, Any]] | None = None

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "sqlite"

    @property
    def socket_path(self) -> Path | None:
        """The proxy's Unix socket, or None when it listens on TCP."""
        if self.port:
            return None
        if self.socket_dir is None:
            raise RuntimeError("FerretDB's socket directory is chosen at start()")
        return self.socket_dir / self._SOCKET

    @property
    def backend_socket_path(self) -> Path:
        if self.socket_dir is None:
            raise RuntimeError("FerretDB's socket directory is chosen at start()")
        return self.socket_dir / self._BACKEND_SOCKET

    @property
    def uri(self) -> str:
        socket_path = self.socket_path
        if socket_path is None:
            return f"mongodb://{LOCALHOST}:{self.port}/"
        return mongodb_socket_uri(socket_path)

    def _missing_binary_hint(self) -> str:
        return (
            f"\nbuild it with `make tools` (or deploy/local/build-ferretdb.sh), "
            f"or point {ENV_FERRETDB_BIN} at a modelreg-ferretdb binary"
        )

    def _choose_socket_dir(self) -> Path:
        preferred = self.data_dir / "sockets"
        if _socket_path_fits(preferred / self._SOCKET):
            return preferred
        try:
            directory = _short_socket_dir(self._SOCKET)
        except StoreStartError as exc:
            raise StoreStartError(
                f"FerretDB's socket {preferred / self._SOCKET} would be longer than the {_SOCKET_PATH_MAX} "
                f"bytes a Unix socket path may have, and {exc}: use a shorter data directory "
                f"(MODELREG_DATA_DIR for `make run`)"
            ) from exc
        self._temporary_socket_dir = True
        return directory

    def _command(self) -> list[str]:
        if self.socket_dir is None or not self.socket_dir.is_dir():
            # Chosen once: a restart (ServerProcess.restart) keeps the address the services know.
            self.socket_dir = self._choose_socket_dir()
        listen = f"{LOCALHOST}:{self.port}" if self.port else str(self.socket_path)
        return [
            str(self.binary),
            f"-listen={listen}",
            f"-backend-socket={self.backend_socket_path}",
            f"-state-dir={self.state_dir}",
            f"-log-level={self.log_level}",
        ]

    def stop(self, timeout: float = 10.0) -> None:
        try:
            super().stop(timeout)
        finally:
            if self._temporary_socket_dir and self.socket_dir is not None:
                shutil.rmtree(self.socket_dir, ignore_errors=True)
                self._temporary_socket_dir = False
                self.socket_dir = None

    def _probe(self) -> None:
        if self._client is None:
            # Until the socket accepts, a plain connect fails fast; a MongoClient would only re-check its
            # server every 500 ms (pymongo's minimum heartbeat), so create it once the socket is open.
            socket_path = self.socket_path
            if socket_path is None:
                socket.create_connection((LOCALHOST, self.port), timeout=0.5).close()
            else:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(0.5)
                    sock.connect(str(socket_path))
            self._client = MongoClient(
                self.uri, directConnection=True, serverSelectionTimeoutMS=500, connectTimeoutMS=500
            )
        self._client.admin.command("ping")

    def _close_probe(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
