"""The TypeScript client (clients/ts): `tsc --noEmit` and the package build with its pinned
compiler, then `node --test`: unit tests, and live tests against the session's stack, including
an upload resumed through a proxy that resets connections, a download resumed likewise, a push
continued after its process was killed, and the modelreg-pull command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from modelreg_local.stack import LocalStack, ServiceProcess

from tests.clients.typescript import TS_PACKAGE, TSX, node_environment, run_node, tsc
from tests.integration.credentials import ready_credential_for
from tests.integration.cutting_proxy import CuttingProxy

MIB = 1024 * 1024
PRINCIPAL = "user:ts-client@example.com"
# The replica of `second_replica` stores 5 MiB parts and keeps 2 in flight; what one cut may
# cost at most is those, the unfinished part and the transport's buffers (8 MiB), as in
# tests/integration/test_upload_faults.py.
RESENT_PER_CUT_MIB = 3 * 5 + 8
CUT_FILE_MIB, CUT_EVERY_MIB, CUTS = 30, 10, 2


_TAP_COUNT = re.compile(r"^# (pass|fail|skipped|cancelled|todo) (\d+)$", re.M)
BUILT = ("index.js", "index.d.ts", "bin/modelreg-pull.js", "gen/modelregistry/v1/artifact_service_pb.d.ts")


def _tap_counts(output: str) -> dict[str, int]:
    """The summary `node --test` prints (TAP reporter: stdout is not a terminal)."""
    return {name: int(count) for name, count in _TAP_COUNT.findall(output)}


def test_typescript_type_checks_and_builds() -> None:
    checked = tsc(["--noEmit", "-p", "tsconfig.json"])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    built = tsc(["-p", "tsconfig.build.json"])
    assert built.returncode == 0, built.stdout + built.stderr
    for output in BUILT:
        assert (TS_PACKAGE / "dist" / output).is_file(), output


def test_typescript_unit_tests() -> None:
    result = run_node([*TSX, "--test", "test/unit.test.ts"], node_environment(), timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    counts = _tap_counts(result.stdout)
    assert counts["pass"] > 0, counts
    assert (counts["fail"], counts["skipped"], counts["cancelled"]) == (0, 0, 0), counts


@pytest.mark.integration
def test_typescript_live_tests_against_the_stack(
    stack: LocalStack, second_replica: ServiceProcess, tmp_path: Path
) -> None:
    """None may skip: the stack's addresses, a credential, the proxy and the command are given."""
    built = tsc(["-p", "tsconfig.build.json"])
    assert built.returncode == 0, built.stdout + built.stderr
    token = ready_credential_for(stack.addresses.artifacts, PRINCIPAL)
    ready_credential_for(second_replica.address, PRINCIPAL)
    with CuttingProxy(second_replica.address, cut_every=CUT_EVERY_MIB * MIB, cuts=CUTS) as proxy:
        env = node_environment(
            {
                "MODELREG_METADATA_ADDR": stack.addresses.metadata,
                "MODELREG_ARTIFACT_ADDR": stack.addresses.artifacts,
                "MODELREG_TOKEN": token,
                "MODELREG_CACHE_DIR": str(tmp_path / "cache"),
                "MODELREG_CUT_ARTIFACT_ADDR": proxy.address,
                "MODELREG_CUT_FILE_MIB": str(CUT_FILE_MIB),
                "MODELREG_CUT_COUNT": str(CUTS),
                "MODELREG_CUT_RESENT_PER_CUT_MIB": str(RESENT_PER_CUT_MIB),
                "MODELREG_TS_PULL_BIN": str(TS_PACKAGE / "dist" / "bin" / "modelreg-pull.js"),
            }
        )
        result = run_node([*TSX, "--test", "test/live.test.ts"], env, timeout=240)
        cuts = proxy.cuts_done
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    counts = _tap_counts(result.stdout)
    assert counts["pass"] >= 7, counts
    assert (counts["fail"], counts["skipped"], counts["cancelled"]) == (0, 0, 0), counts
    assert cuts == CUTS, "the proxy did not cut the upload as often as planned"
