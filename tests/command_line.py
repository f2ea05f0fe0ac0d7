"""Running the real `modelreg` executable (the console script in .venv/bin) in tests."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from modelreg_local.stack import LocalStack

MODELREG = Path(sys.executable).with_name("modelreg")
MIB = 1024 * 1024


@dataclass
class Cli:
    env: dict[str, str]
    cwd: Path

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

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(MODELREG), *args],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*args)
        assert done.returncode == 0, f"modelreg {' '.join(args)} failed: {done.stderr}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--output", "json").stdout)

    def fails(self, code: int, *args: str) -> str:
        """Run a command that must exit with `code`; returns its one-line error."""
        done = self.run(*args)
        assert done.returncode == code, f"modelreg {' '.join(args)}: exit {done.returncode}: {done.stderr}"
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("modelreg: error: ")
        return lines[0]


def environment(stack: LocalStack, cache: Path, actor: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELREG_")}
    env.update(
        MODELREG_METADATA_ADDR=stack.addresses.metadata,
        MODELREG_ARTIFACT_ADDR=stack.addresses.artifacts,
        MODELREG_CACHE_DIR=str(cache),
        MODELREG_ACTOR=actor,
    )
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
