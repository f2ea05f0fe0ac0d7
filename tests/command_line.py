"""Running the real `modelreg` executable (the console script in .venv/bin) in tests.

Each `Cli` acts as one principal through `MODELREG_TOKEN`, an API token that the stack's
bootstrap admin issued (`tests.support.credential_for`, via `ready_credential_for`), and has a
config directory of its own, so neither the developer's `modelreg login` nor a local
`.data/admin.token` is ever used."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from modelreg.credentials import TOKEN_ENV
from modelreg_local.stack import LocalStack

from tests.integration.credentials import ready_credential_for

MODELREG = Path(sys.executable).with_name("modelreg")
MIB = 1024 * 1024


# Who each credential issued by `environment`/`as_principal` acts as, so `Cli.principal` needs no call.
_PRINCIPALS: dict[str, str] = {}


def _credential(artifacts: str, name: str, role: str, namespace: str) -> str:
    token = ready_credential_for(artifacts, name, role, namespace)
    _PRINCIPALS[token] = name if ":" in name else f"user:{name}"  # as credential_for names it
    return token


@dataclass
class Cli:
    env: dict[str, str]
    cwd: Path

    @property
    def principal(self) -> str:
        """Who the commands act as, e.g. `user:cli-actor-0a1b2c3d4e@example.com`."""
        token = self.env.get(TOKEN_ENV, "")
        if token not in _PRINCIPALS:
            _PRINCIPALS[token] = str(self.json("whoami")["principal"])
        return _PRINCIPALS[token]

    def as_principal(self, name: str, role: str = "admin", namespace: str = "-") -> Cli:
        """The same command line (cache, directory) acting as `name` (a principal, or an email
        for `user:<email>`) with `role` in `namespace` (`-`: every namespace)."""
        token = _credential(self.env["MODELREG_ARTIFACT_ADDR"], name, role, namespace)
        return dataclasses.replace(self, env={**self.env, TOKEN_ENV: token})

    def without_credential(self) -> Cli:
        """The same command line with no credential source set at all."""
        return dataclasses.replace(self, env={k: v for k, v in self.env.items() if k != TOKEN_ENV})

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(MODELREG), *args],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(
        self, *args: str, timeout: float = 240, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `modelreg ARGS`; `stdin` is its standard input (none by default)."""
        return subprocess.run(
            [str(MODELREG), *args],
            env=self.env,
            cwd=self.cwd,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, f"modelreg {' '.join(args)} failed: {done.stderr}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--output", "json").stdout)

    def fails(self, code: int, *args: str, stdin: str | None = None) -> str:
        """Run a command that must exit with `code`; returns its one-line error."""
        done = self.run(*args, stdin=stdin)
        assert done.returncode == code, f"modelreg {' '.join(args)}: exit {done.returncode}: {done.stderr}"
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("modelreg: error: ")
        return lines[0]


def environment(
    stack: LocalStack, cache: Path, actor: str, role: str = "admin", namespace: str = "-"
) -> dict[str, str]:
    """The CLI's environment against `stack`, acting as `actor` (`user:<actor>` unless it is a
    principal already) with `role` in `namespace`: a global admin by default."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELREG_")}
    env.update(
        MODELREG_METADATA_ADDR=stack.addresses.metadata,
        MODELREG_ARTIFACT_ADDR=stack.addresses.artifacts,
        MODELREG_CACHE_DIR=str(cache),
        # `modelreg login` writes here, never to the developer's ~/.config.
        XDG_CONFIG_HOME=str(cache.parent / "config"),
    )
    env[TOKEN_ENV] = _credential(stack.addresses.artifacts, actor, role, namespace)
    return env


def write_files(root: Path, sizes: dict[str, int]) -> None:
    for path, size in sizes.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as stream:
            for start in range(0, size, 8 * MIB):
                stream.write(os.urandom(min(8 * MIB, size - start)))


class Lines:
    """The lines a running process writes, readable with a timeout (a pipe read blocks)."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next(self, timeout: float) -> str | None:
        """The next line; None at the end of the stream. Raises queue.Empty after `timeout` s."""
        return self._lines.get(timeout=timeout)
