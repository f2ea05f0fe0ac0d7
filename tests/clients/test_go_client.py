"""The Go client (clients/go): vet, gofmt, and `go test ./...` with its live tests against the
session's stack, including a resumed upload through a proxy that cuts connections."""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest
from modelreg_local.stack import LocalStack

from tests.clients.golang import GO_MODULE, build, go_environment, run_go
from tests.integration.cutting_proxy import CuttingProxy
from tests.support import ALICE, credential_for

MIB = 1024 * 1024


def test_go_vet_and_gofmt_are_clean() -> None:
    env = go_environment()
    vet = run_go(["vet", "./..."], env, timeout=300)
    assert vet.returncode == 0, vet.stdout + vet.stderr
    gofmt = Path(run_go(["env", "GOROOT"], env, timeout=30).stdout.strip()) / "bin" / "gofmt"
    listed = subprocess.run(
        [str(gofmt), "-l", "."], cwd=GO_MODULE, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert listed == [], f"not gofmt-formatted: {listed}"


@pytest.mark.integration
def test_go_tests_against_the_stack(stack: LocalStack, tmp_path: Path) -> None:
    """Unit and live tests; none may skip, since the stack's addresses and a credential are given."""
    # One proxy cuts an upload twice (resumed within the push), the other once after 40 MiB
    # (a push whose only attempt dies there, continued by the next push).
    with (
        CuttingProxy(stack.addresses.artifacts, cut_every=12 * MIB, cuts=2) as proxy,
        CuttingProxy(stack.addresses.artifacts, cut_every=40 * MIB, cuts=1) as killer,
    ):
        env = go_environment(
            {
                "MODELREG_METADATA_ADDR": stack.addresses.metadata,
                "MODELREG_ARTIFACT_ADDR": stack.addresses.artifacts,
                "MODELREG_TOKEN": credential_for(ALICE),
                "MODELREG_TEST_CUT_ARTIFACT_ADDR": proxy.address,
                "MODELREG_TEST_KILL_ARTIFACT_ADDR": killer.address,
                # The push journals of DialFromEnv's clients: never the developer's ~/.cache.
                "MODELREG_CACHE_DIR": str(tmp_path / "cache"),
            }
        )
        result = run_go(["test", "-count=1", "-v", "./..."], env, timeout=600)
        cuts = proxy.cuts_done
        kills = killer.cuts_done
    output = result.stdout + result.stderr
    # The failures first (t.Fatalf lines name their _test.go line), then the end of the output.
    failures = [
        line
        for line in output.splitlines()
        if line.lstrip().startswith(("--- FAIL", "panic:")) or "_test.go:" in line
    ]
    assert result.returncode == 0, "\n".join(failures) + "\n...\n" + output[-6000:]
    assert "--- SKIP" not in output, re.findall(r"--- SKIP.*\n.*\n", output)
    live = (
        "TestLivePushAndPullByAlias",
        "TestLiveUploadResumesAfterCutConnections",
        "TestLivePushContinuesAfterAnInterruptedPush",
        "TestLivePullResumesAfterACutDownload",
        "TestLiveExitCodes",
    )
    for test in live:
        assert f"--- PASS: {test}" in output
    assert cuts == 2, "the proxy did not cut the upload twice"
    assert kills == 1, "the interrupted push was not cut"


def test_modelreg_pull_builds_static(tmp_path: Path) -> None:
    """CGO_ENABLED=0: an ELF without an interpreter (PT_INTERP), runnable in a scratch image."""
    binary = build("./cmd/modelreg-pull", tmp_path / "modelreg-pull", go_environment())
    assert not _has_interpreter(binary.read_bytes())


def _has_interpreter(elf: bytes) -> bool:
    assert elf[:4] == b"\x7fELF", "not an ELF file"
    assert elf[4] == 2, "not a 64-bit ELF file"
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    entry_size, count = struct.unpack_from("<HH", elf, 0x36)
    pt_interp = 3
    return any(struct.unpack_from("<I", elf, phoff + i * entry_size)[0] == pt_interp for i in range(count))
