"""The seam under services and SDK: both stand on `modelreg-api`, a service never loads the SDK,
one error hierarchy with one AIP-193 codec, and the SDK imports where there is no `fcntl`."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import grpc
import modelreg_api
import pytest
from modelreg import errors as sdk_errors
from modelreg.cache import BlobCache
from modelreg_api import errors
from modelreg_common.relay import relayed_error

ROOT = Path(__file__).resolve().parents[2]
SERVER_DISTRIBUTIONS = ("modelreg-common", "modelreg-metadata", "modelreg-artifacts", "modelreg-local")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_closure(distribution: str) -> set[str]:
    """Every distribution that installing `distribution` brings in (extras not asked for are not)."""
    seen: set[str] = set()
    todo = [distribution]
    while todo:
        name = _canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for requirement in metadata.requires(name) or []:
            if "extra ==" in requirement.partition(";")[2]:
                continue
            match = _NAME.match(requirement)
            assert match is not None, requirement
            todo.append(match.group(0))
    return seen


@pytest.mark.parametrize("distribution", SERVER_DISTRIBUTIONS)
def test_server_distributions_install_the_api_package_and_not_the_sdk(distribution: str) -> None:
    closure = installed_closure(distribution)
    assert "modelreg-api" in closure
    assert "modelreg" not in closure


def test_the_lock_file_agrees() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages = {package["name"]: package for package in lock["package"]}

    def closure(name: str) -> set[str]:
        found, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current not in found:
                found.add(current)
                todo += [d["name"] for d in packages[current].get("dependencies", [])]
        return found

    for distribution in SERVER_DISTRIBUTIONS:
        assert "modelreg" not in closure(distribution), distribution
    assert "modelreg-api" in closure("modelreg")


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_servers_and_the_local_stack_never_import_the_sdk() -> None:
    loaded = _python(
        "import sys\n"
        "import modelreg_metadata.server, modelreg_metadata.__main__\n"
        "import modelreg_artifacts.server, modelreg_artifacts.__main__\n"
        "import modelreg_local.stack, modelreg_local.__main__\n"
        "print(sorted(m for m in sys.modules if m == 'modelreg' or m.startswith('modelreg.')))"
    )
    assert loaded == "[]"


def test_the_sdk_imports_without_fcntl_and_then_downloads_privately(tmp_path: Path) -> None:
    # As on Windows: `import fcntl` fails. Everything else of the SDK and the CLI still imports.
    resumable = _python(
        "import sys\n"
        "sys.modules['fcntl'] = None\n"
        "import modelreg, modelreg.cli.app\n"
        "from pathlib import Path\n"
        "from modelreg.cache import BlobCache\n"
        f"with BlobCache(Path({str(tmp_path)!r})).partial('ab' * 32) as partial:\n"
        "    print(partial.resumable)"
    )
    assert resumable == "False"
    with BlobCache(tmp_path).partial("cd" * 32) as partial:  # here, with POSIX locks
        assert partial.resumable


def test_the_generated_code_is_typed_for_downstream_checkers() -> None:
    package = Path(modelreg_api.__file__).parent
    assert (package / "py.typed").is_file()
    generated = package.parent / "modelregistry"
    assert (generated / "py.typed").is_file()
    assert (generated / "v1" / "model_pb2.pyi").is_file()
    assert "py.typed" in (ROOT / "Makefile").read_text()  # `make proto` recreates the marker


def test_the_sdk_raises_the_same_classes_the_services_raise() -> None:
    for name in ("RegistryError", "InvalidArgument", "NotFound", "Aborted", "RoleDenied", "Unavailable"):
        assert getattr(sdk_errors, name) is getattr(errors, name)
    assert issubclass(sdk_errors.IntegrityError, errors.ModelregError)


class FailedCall(grpc.RpcError):
    """A failed call as grpc's client raises it, carrying what a server sent."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: tuple[tuple[str, Any], ...]):
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailers


def sent(error: errors.RegistryError, request_id: str = "r-1") -> FailedCall:
    """What a client receives when a service's interceptor answers with `error`."""
    code, message, details = errors.rich_status(error)
    return FailedCall(code, message, (("x-request-id", request_id), ("grpc-status-details-bin", details)))


def test_an_invalid_argument_round_trips_with_its_field_and_reason() -> None:
    received = errors.from_rpc_error(
        sent(errors.InvalidArgument("page_size", "must be >= 0", reason="BAD_PAGE"))
    )
    assert isinstance(received, errors.InvalidArgument)
    assert (received.code, received.reason, received.field) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "BAD_PAGE",
        "page_size",
    )
    assert (received.message, received.description, received.request_id) == (
        "page_size: must be >= 0",
        "must be >= 0",
        "r-1",
    )


def test_a_role_denial_round_trips_as_role_denied_with_its_metadata() -> None:
    denied = errors.PermissionDenied(
        "models.create denied", reason=errors.ROLE_DENIED_REASON, metadata={"permission": "models.create"}
    )
    received = errors.from_rpc_error(sent(denied))
    assert isinstance(received, errors.RoleDenied)
    assert received.permission == "models.create"


def test_an_error_without_a_reason_sends_its_class_default_and_a_bare_status_decodes_to_none() -> None:
    assert errors.from_rpc_error(sent(errors.NotFound("gone"))).reason == "NOT_FOUND"
    bare = errors.from_rpc_error(FailedCall(grpc.StatusCode.UNKNOWN, "", ()))
    assert (type(bare), bare.code, bare.reason, bare.message) == (
        errors.RegistryError,
        grpc.StatusCode.UNKNOWN,
        "",
        "UNKNOWN",
    )
    assert errors.rich_status(errors.RegistryError("a bug"))[0] is grpc.StatusCode.INTERNAL


def test_a_service_passes_on_what_another_answered_on_purpose_and_nothing_else() -> None:
    sealed = relayed_error(sent(errors.FailedPrecondition("sealed", reason="VERSION_SEALED")))
    assert (type(sealed), sealed.reason) == (errors.FailedPrecondition, "VERSION_SEALED")
    bad = relayed_error(sent(errors.InvalidArgument("path", "absolute")))
    assert isinstance(bad, errors.InvalidArgument)
    assert (bad.field, bad.description, bad.message) == ("path", "absolute", "path: absolute")
    down = relayed_error(FailedCall(grpc.StatusCode.DEADLINE_EXCEEDED, "slow", ()))
    assert (type(down), down.reason, down.message) == (
        errors.Unavailable,
        "UNAVAILABLE",
        "a registry service is unavailable: slow",
    )
    bug = relayed_error(FailedCall(grpc.StatusCode.RESOURCE_EXHAUSTED, "too big", ()))
    assert (type(bug), bug.code, bug.reason) == (
        errors.RegistryError,
        grpc.StatusCode.INTERNAL,
        "REGISTRY_ERROR",
    )
