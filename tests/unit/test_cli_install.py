"""The `modelreg` command is installed by the same `uv sync` that `make run` performs."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path


def test_the_package_declares_the_console_script() -> None:
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert scripts["modelreg"] == "modelreg.cli:entry_point"


def test_the_script_is_in_the_environment_and_runs() -> None:
    script = Path(sys.executable).with_name("modelreg")
    assert script.is_file()
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: modelreg")
    module = subprocess.run(
        [sys.executable, "-m", "modelreg", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert module.stdout.strip() == f"modelreg {metadata.version('modelreg')}"
