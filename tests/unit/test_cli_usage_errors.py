"""Mistakes in how a command is used are the CLI's own usage error (exit 2, naming the option),
not the API's `InvalidResourceName`: no resource name is at fault. Nothing is sent anywhere."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any, cast

import pytest
from modelreg.aio import AsyncClient
from modelreg.cli import app, versions
from modelreg.cli.arguments import UsageError
from modelreg.cli.output import Output


@pytest.fixture
def modelreg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """`modelreg ARGS...` in this process against an address where nothing listens."""
    for key in ("MODELREG_TOKEN_FILE", "MODELREG_TLS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MODELREG_TOKEN", "mrt_0123456789abcdef_secret")
    monkeypatch.setenv("MODELREG_METADATA_ADDR", "127.0.0.1:1")
    monkeypatch.setenv("MODELREG_ARTIFACT_ADDR", "127.0.0.1:1")
    monkeypatch.setenv("MODELREG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = app.main(["--timeout", "1", *args])
        return code, capsys.readouterr().err

    return run


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["versions", "purge", "team-a/m/1"],
            "--yes: purging team-a/m/1 cannot be undone; confirm with --yes",
        ),
        (
            ["events", "-f", "--end-time", "2026-01-01T00:00:00Z"],
            "--end-time: cannot be combined with --follow",
        ),
        (
            ["events", "--follow", "--newest-first"],
            "--newest-first: cannot be combined with --follow (which prints events as they come)",
        ),
        (["compare", "team-a/m", "1"], "VERSION: name at least two versions to compare"),
        (
            [
                "follow",
                "team-a/m@production",
                "--deployment",
                "a/b/c",
                "--kubernetes-api",
                "https://127.0.0.1:1",
            ],
            "--deployment: 'a/b/c' is not [NAMESPACE/]NAME",
        ),
    ],
)
def test_a_usage_mistake_exits_2_with_one_line_naming_the_option(
    modelreg: Any, args: list[str], line: str
) -> None:
    code, stderr = modelreg(*args)
    assert code == app.EXIT_USAGE
    assert stderr == f"modelreg: error: {line}\n"


def test_with_json_output_the_option_is_the_field(modelreg: Any) -> None:
    code, stderr = modelreg("-o", "json", "versions", "purge", "team-a/m/1")
    assert code == app.EXIT_USAGE
    error = json.loads(stderr.splitlines()[0])["error"]
    assert error["field"] == "--yes"
    assert error["message"] == "purging team-a/m/1 cannot be undone; confirm with --yes"


def test_the_error_is_not_the_api_resource_name_error() -> None:
    args = argparse.Namespace(version="team-a/m/1", yes=False, etag="")
    with pytest.raises(UsageError) as caught:
        asyncio.run(versions.purge_version(args, cast(AsyncClient, None), Output(json_mode=False)))
    assert not isinstance(caught.value, ValueError)
    assert caught.value.option == "--yes"
