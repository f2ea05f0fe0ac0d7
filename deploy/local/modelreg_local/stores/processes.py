"""The life cycle of one local server process: spawn, wait until healthy, stop, report its log."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from modelreg_local.stores.errors import StoreStartError

_LOG_TAIL_LINES = 40


class ServerProcess:
    """One server child process: spawn, health-wait, stop; its output goes to a log file in data_dir."""

    name = "server"

    def __init__(self, data_dir: Path, binary: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.binary = binary
        self.log_path = self.data_dir / "server.log"
        self._pid_path = self.data_dir / "server.pid"
        self._ports_path = self.data_dir / "ports.json"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    # -- to implement -------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _working_directory(self) -> Path:
        return self.data_dir

    def _probe(self) -> None:
        """Return when the server answers a real request; raise anything otherwise."""
        raise NotImplementedError

    def _close_probe(self) -> None:
        """Release what `_probe` holds (clients, pools)."""

    def _missing_binary_hint(self) -> str:
        return ""

    # -- ports remembered per data dir, so a restart keeps the same addresses -----------------------
    def _saved_ports(self) -> dict[str, int]:
        try:
            saved = json.loads(self._ports_path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(saved, dict):
            return {}
        return {k: v for k, v in saved.items() if isinstance(k, str) and isinstance(v, int)}

    def _save_ports(self, ports: Mapping[str, int]) -> None:
        self._ports_path.write_text(json.dumps(dict(ports), indent=2, sort_keys=True) + "\n")

    # -- life cycle ---------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Spawn the server (no shell, new session, 127.0.0.1 only); return without waiting for health."""
        if self._process is not None:
            raise RuntimeError(f"{self.name} already started (pid {self._process.pid})")
        if not self.binary.is_file() or not os.access(self.binary, os.X_OK):
            raise StoreStartError(
                f"{self.name} binary not found or not executable: {self.binary}{self._missing_binary_hint()}"
            )
        # The data, logs and sockets are this user's alone: private directory, private files.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._refuse_if_already_running()
        command = self._command()
        self._log = self.log_path.open("ab")
        self._log.write(
            f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting: {' '.join(command)}\n".encode()
        )
        self._log.flush()
        self._log_offset = self._log.tell()
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self._working_directory(),
                env=self._environment(),
                umask=0o077,
                # Own session: a Ctrl-C in the terminal reaches only us, and we stop the server in order.
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            self._log = None
            raise StoreStartError(f"could not start {self.name} ({command[0]}): {exc}") from exc
        self._pid_path.write_text(f"{self._process.pid}\n")

    def _refuse_if_already_running(self) -> None:
        """A server left over from a killed run would hold the data dir (and its ports): say so."""
        try:
            pid = int(self._pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            return
        if str(self.data_dir) in cmdline:
            raise StoreStartError(
                f"{self.name} is already running on {self.data_dir} (pid {pid}, left over from an earlier "
                f"run?); stop it with `kill {pid}` and retry"
            )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Block until the server answers a real request; StoreStartError (with the log tail) otherwise."""
        if self._process is None:
            raise RuntimeError(f"{self.name} was not started")
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        try:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise StoreStartError(
                        f"{self.name} exited with code {code} during start-up{self._log_tail()}"
                    )
                try:
                    self._probe()
                except Exception as exc:  # any failure means "not ready yet"
                    last_error = exc
                else:
                    return
                if time.monotonic() >= deadline:
                    raise StoreStartError(
                        f"{self.name} did not become healthy within {timeout:g} s "
                        f"(last error: {last_error!r}){self._log_tail()}"
                    )
                time.sleep(0.1)
        finally:
            self._close_probe()

    def exit_code(self) -> int | None:
        """The exit code when the process has ended (negative: the signal that ended it), else None."""
        return self._process.poll() if self._process is not None else None

    def restart(self, timeout: float = 60.0) -> None:
        """Start again after the process died (the supervisor's remedy): same data, same addresses,
        so the services' clients reconnect to it by themselves."""
        self._release(None)
        self._before_restart()
        self.start()
        self.wait_healthy(timeout)

    def _before_restart(self) -> None:
        """Clear what a killed process left behind that would stop the next one."""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Safe to call repeatedly and before start()."""
        self._release(timeout)

    def _release(self, timeout: float | None) -> None:
        """End the process (politely within `timeout`; None: it has already ended) and let go of
        its pid file, log and probe."""
        process, self._process = self._process, None
        try:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            self._close_probe()
            if process is not None:
                with contextlib.suppress(OSError):
                    self._pid_path.unlink()
            if self._log is not None:
                self._log.close()
                self._log = None

    def _log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except OSError as exc:
            return f"\n(could not read {self.log_path}: {exc})"
        tail = text.splitlines()[-lines:]
        if not tail:
            return f"\n({self.log_path} is empty)"
        return f"\nlast {len(tail)} lines of {self.log_path}:\n" + "\n".join(tail)

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
