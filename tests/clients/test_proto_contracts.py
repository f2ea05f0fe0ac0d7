"""The protos as a contract: language options for every generator, and `buf breaking` (run by
`make lint` through .ci/buf-breaking) failing on a breaking change to v1."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
PROTOS = REPOSITORY / "protos" / "modelregistry" / "v1"
BUF = REPOSITORY / ".venv" / "bin" / "buf"
GO_PACKAGE = "github.com/modelreg/modelreg/clients/go/gen/modelregistry/v1;modelregistryv1"


def _options(proto: Path) -> dict[str, str]:
    found = re.findall(r'^option (\w+) = (?:"([^"]*)"|(\w+));', proto.read_text(), flags=re.MULTILINE)
    return {name: quoted or bare for name, quoted, bare in found}


def test_every_proto_names_its_package_for_every_language() -> None:
    go_mod = (REPOSITORY / "clients" / "go" / "go.mod").read_text()
    go_module = re.search(r"^module (\S+)", go_mod, re.MULTILINE)
    assert go_module is not None
    assert GO_PACKAGE.startswith(go_module.group(1) + "/gen/modelregistry/v1;")
    outer_classes = set()
    for proto in sorted(PROTOS.glob("*.proto")):
        options = _options(proto)
        assert options["go_package"] == GO_PACKAGE, proto.name
        assert options["java_package"] == "dev.modelreg.modelregistry.v1", proto.name
        assert options["java_multiple_files"] == "true", proto.name
        assert options["csharp_namespace"] == "Modelregistry.V1", proto.name
        outer_classes.add(options["java_outer_classname"])
    assert len(outer_classes) == len(list(PROTOS.glob("*.proto"))), "Java outer class names must differ"


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    result = subprocess.run(
        ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """A repository whose main holds this checkout's protos, buf.yaml and .ci/buf-breaking."""
    if not BUF.is_file() or shutil.which("git") is None:
        pytest.fail("buf (in .venv) and git are needed: run `make venv`", pytrace=False)
    repo = tmp_path / "repo"
    shutil.copytree(REPOSITORY / "protos", repo / "protos")
    (repo / ".ci").mkdir()
    shutil.copy(REPOSITORY / ".ci" / "buf-breaking", repo / ".ci" / "buf-breaking")
    shutil.copy(REPOSITORY / "buf.yaml", repo / "buf.yaml")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v1")
    return repo


def _breaking(repo: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "BUF_BREAKING_AGAINST"}
    return subprocess.run(
        ["bash", ".ci/buf-breaking", str(BUF)],  # noqa: S607
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _edit(repo: Path, old: str, new: str) -> None:
    model = repo / "protos" / "modelregistry" / "v1" / "model.proto"
    text = model.read_text()
    assert old in text
    model.write_text(text.replace(old, new, 1))


def test_removing_a_field_on_a_branch_fails(published: Path) -> None:
    _git(published, "checkout", "-qb", "feature")
    _edit(published, "  string name = 1;\n", "")
    _git(published, "commit", "-qam", "drop Model.name")
    result = _breaking(published)
    assert result.returncode != 0
    assert 'Previously present field "1" with name "name" on message "Model" was deleted' in result.stdout


def test_a_breaking_commit_on_main_fails_against_its_parent(published: Path) -> None:
    _edit(published, 'option go_package = "', 'option go_package = "example.com/moved;')
    _git(published, "commit", "-qam", "move the Go package")
    result = _breaking(published)
    assert result.returncode != 0
    assert 'File option "go_package" changed' in result.stdout


def test_an_added_field_passes(published: Path) -> None:
    _git(published, "checkout", "-qb", "feature")
    _edit(published, "message Model {\n", "message Model {\n  string added_in_test = 99;\n")
    _git(published, "commit", "-qam", "add a field")
    result = _breaking(published)
    assert result.returncode == 0, result.stdout + result.stderr
