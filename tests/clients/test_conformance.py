"""One scenario, three languages (issue 14): the Python SDK, the Go client and the TypeScript
client run the same scenario against the session's stack, and each pulls what the others pushed.

Each language has a scenario program with one command-line contract (docs/clients.md,
"Conformance"): `run MODEL SOURCE_DIR DEST_DIR` creates a model and a version with params and
metrics, pushes two files (one of 64 MiB) through a proxy that cuts the upload once, seals the
version, moves an alias, pulls by the alias and hashes what it wrote, then protects another alias
and reports the ErrorInfo of the refused move; `pull VERSION_REF DEST_DIR` pulls a version. Both
print one JSON line. The TypeScript leg runs when clients/ts has its scenario program.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from modelreg_local.stack import LocalStack
from modelregistry.v1 import metadata_service_pb2 as md

from tests.clients import python_scenario
from tests.clients.golang import build, go_environment
from tests.conftest import IN_CI
from tests.integration.cutting_proxy import CuttingProxy
from tests.support import ACTOR, ALICE, credential_for

if TYPE_CHECKING:
    from tests.support import MetadataStub

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
REPOSITORY = Path(__file__).resolve().parents[2]
TS_PACKAGE = REPOSITORY / "clients" / "ts"
TS_SCENARIO = TS_PACKAGE / "conformance" / "scenario.ts"
# Two files per language, each language its own bytes (identical content would be deduplicated
# and never cross the wire): one of 64 MiB through a resumable session, one small.
SIZES = {"weights/model.bin": 64 * MIB, "config.json": 300 * 1024}
# The proxy cuts every upload once, in the middle of the large file.
CUT_AFTER = 24 * MIB


@dataclass(frozen=True)
class Leg:
    language: str
    # The program and its fixed arguments; the contract's arguments follow.
    command: list[str]
    cwd: Path
    env: dict[str, str]


def _go_leg(tmp: Path) -> Leg:
    binary = build("./cmd/conformance", tmp / "conformance-go", go_environment())
    return Leg("go", [str(binary)], REPOSITORY, go_environment({"MODELREG_CACHE_DIR": str(tmp / "go-cache")}))


def _python_leg(tmp: Path) -> Leg:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELREG_")}
    env["MODELREG_CACHE_DIR"] = str(tmp / "python-cache")
    return Leg("python", [sys.executable, "-m", python_scenario.__name__], REPOSITORY, env)


def _ts_leg(tmp: Path) -> Leg:
    tsx = TS_PACKAGE / "node_modules" / ".bin" / "tsx"
    if not tsx.is_file() or shutil.which("node") is None:
        message = "clients/ts has a scenario but no node or node_modules (make tools installs them)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELREG_")}
    env["MODELREG_CACHE_DIR"] = str(tmp / "ts-cache")
    return Leg("ts", [str(tsx), str(TS_SCENARIO)], TS_PACKAGE, env)


@pytest.fixture(scope="module")
def legs(tmp_path_factory: pytest.TempPathFactory) -> list[Leg]:
    tmp = tmp_path_factory.mktemp("legs")
    return [_python_leg(tmp), _go_leg(tmp), _ts_leg(tmp)]


def _run(leg: Leg, args: list[str], addresses: dict[str, str]) -> dict[str, Any]:
    env = {**leg.env, **addresses, "MODELREG_TOKEN": credential_for(ALICE)}
    result = subprocess.run(
        [*leg.command, *args], cwd=leg.cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    what = f"{leg.language} {args[0]}"
    assert result.returncode == 0, f"{what}: exit {result.returncode}\n{result.stderr[-4000:]}"
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, f"{what} printed {len(lines)} lines, not one JSON line: {result.stdout[-2000:]}"
    output: dict[str, Any] = json.loads(lines[0])
    assert output["language"] == leg.language
    return output


def _write_sources(root: Path) -> dict[str, str]:
    digests = {}
    for path, size in SIZES.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        with target.open("wb") as stream:
            for start in range(0, size, 8 * MIB):
                block = os.urandom(min(8 * MIB, size - start))
                stream.write(block)
                hasher.update(block)
        digests[path] = hasher.hexdigest()
    return digests


@dataclass
class Pushed:
    output: dict[str, Any]
    source: Path
    digests: dict[str, str]


@pytest.fixture(scope="module")
def scenarios(
    stack: LocalStack, legs: list[Leg], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Pushed]]:
    tmp = tmp_path_factory.mktemp("conformance")
    done: dict[str, Pushed] = {}
    for leg in legs:
        source = tmp / leg.language / "source"
        digests = _write_sources(source)
        model = f"conformance/{leg.language}-{uuid.uuid4().hex[:8]}"
        with CuttingProxy(stack.addresses.artifacts, cut_every=CUT_AFTER, cuts=1) as proxy:
            addresses = {
                "MODELREG_METADATA_ADDR": stack.addresses.metadata,
                "MODELREG_ARTIFACT_ADDR": proxy.address,
            }
            output = _run(leg, ["run", model, str(source), str(tmp / leg.language / "pulled")], addresses)
            assert proxy.cuts_done == 1, f"{leg.language}: the proxy never cut the upload"
        done[leg.language] = Pushed(output, source, digests)
    yield done
    shutil.rmtree(tmp, ignore_errors=True)


def _each(scenarios: dict[str, Pushed], check: Callable[[str, Pushed], None]) -> None:
    for language, pushed in scenarios.items():
        check(language, pushed)


def test_every_language_pushes_a_version_with_params_and_metrics(scenarios: dict[str, Pushed]) -> None:
    def check(language: str, pushed: Pushed) -> None:
        out = pushed.output
        assert out["model_version"].endswith("/versions/1"), language
        assert out["params"] == python_scenario.PARAMS, language
        assert out["metrics"] == pytest.approx(python_scenario.METRICS), language
        assert {path: f["sha256"] for path, f in out["files"].items()} == pushed.digests, language
        assert {path: f["size_bytes"] for path, f in out["files"].items()} == SIZES, language

    _each(scenarios, check)


def test_every_language_resumes_the_cut_upload(scenarios: dict[str, Pushed]) -> None:
    for language, pushed in scenarios.items():
        assert pushed.output["resumed_streams"] >= 1, f"{language} did not resume the cut stream"


async def test_every_language_moves_the_alias_and_pulls_by_it(
    scenarios: dict[str, Pushed], metadata: MetadataStub
) -> None:
    for language, pushed in scenarios.items():
        out = pushed.output
        model = out["model_version"].rsplit("/versions/", 1)[0]
        request = md.GetAliasRequest(name=f"{model}/aliases/{out['alias']}")
        alias = await metadata.GetAlias(request, metadata=ACTOR)
        assert alias.model_version == out["model_version"], language
        assert out["pulled_model_version"] == out["model_version"], language
        assert out["pulled"] == pushed.digests, language


def test_every_language_reads_the_reason_of_a_refused_protected_alias_move(
    scenarios: dict[str, Pushed],
) -> None:
    for language, pushed in scenarios.items():
        assert pushed.output["protected_alias_code"] == "FAILED_PRECONDITION", language
        assert pushed.output["protected_alias_reason"] == "PROTECTED_ALIAS_VERSION_NOT_APPROVED", language


def test_each_language_pulls_what_the_others_pushed_byte_identical(
    stack: LocalStack, legs: list[Leg], scenarios: dict[str, Pushed], tmp_path: Path
) -> None:
    addresses = {
        "MODELREG_METADATA_ADDR": stack.addresses.metadata,
        "MODELREG_ARTIFACT_ADDR": stack.addresses.artifacts,
    }
    for puller in legs:
        for language, pushed in scenarios.items():
            if language == puller.language:
                continue
            dest = tmp_path / f"{puller.language}-from-{language}"
            out = _run(puller, ["pull", pushed.output["model_version"], str(dest)], addresses)
            assert out["model_version"] == pushed.output["model_version"]
            assert out["pulled"] == pushed.digests, f"{puller.language} pulling {language}'s version"
            for path in SIZES:
                assert filecmp.cmp(pushed.source / path, dest / path, shallow=False), (
                    f"{puller.language} pulled {path} of {language}'s version with other bytes"
                )
