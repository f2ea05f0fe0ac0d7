"""The CLI's sign-in, token and role commands and its exit codes, against an in-process
AccessService that plays the registry's part (the real one is tested in tests/integration)."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, empty_pb2, message, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from modelreg import errors
from modelreg.cli import app
from modelreg.cli.arguments import duration
from modelreg.credentials import CredentialError
from modelreg_local.stores import free_port
from modelregistry.v1 import access_service_pb2 as acc

ALICE = "user:alice@example.com"
ADMIN_TOKEN = "mrt_0123456789abcdef_admin-secret"
VIEWER_TOKEN = "mrt_fedcba9876543210_viewer-secret"
TOKEN_ID = "00112233445566aa"


def _trailers(reason: str, **metadata: str) -> tuple[tuple[str, bytes], ...]:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="modelreg", metadata=metadata))
    status = status_pb2.Status(details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),)


@dataclass
class FakeAccess:
    """Admin and viewer credentials; whatever else is presented is unknown."""

    requests: list[message.Message] = field(default_factory=list)

    def _caller(self, context: grpc.ServicerContext) -> str:
        presented = dict(context.invocation_metadata()).get("authorization", "")
        if presented == f"Bearer {ADMIN_TOKEN}":
            return "admin"
        if presented == f"Bearer {VIEWER_TOKEN}":
            return "viewer"
        problem = "missing" if not presented else "unknown"
        context.set_trailing_metadata(_trailers("UNAUTHENTICATED", problem=problem))
        context.abort(grpc.StatusCode.UNAUTHENTICATED, f"credential {problem}")
        raise AssertionError("unreachable")

    def identity(
        self, request: acc.GetCallerIdentityRequest, context: grpc.ServicerContext
    ) -> acc.CallerIdentity:
        role = acc.ROLE_ADMIN if self._caller(context) == "admin" else acc.ROLE_VIEWER
        return acc.CallerIdentity(
            principal=ALICE,
            groups=["group:ml-team"],
            authentication="token:0123456789abcdef",
            bindings=[
                acc.RoleBinding(parent="namespaces/-", principal=ALICE, role=role, create_actor="user:admin")
            ],
        )

    def create_token(
        self, request: acc.CreateApiTokenRequest, context: grpc.ServicerContext
    ) -> acc.CreateApiTokenResponse:
        self._caller(context)
        self.requests.append(request)
        token = acc.ApiToken(
            name=f"tokens/{TOKEN_ID}",
            principal=request.principal or ALICE,
            restriction=request.restriction,
            expire_time=timestamp_pb2.Timestamp(seconds=4_000_000_000),
        )
        return acc.CreateApiTokenResponse(token=token, secret=f"mrt_{TOKEN_ID}_new-secret")

    def list_tokens(
        self, request: acc.ListApiTokensRequest, context: grpc.ServicerContext
    ) -> acc.ListApiTokensResponse:
        self._caller(context)
        self.requests.append(request)
        return acc.ListApiTokensResponse(
            tokens=[
                acc.ApiToken(name=f"tokens/{TOKEN_ID}", principal=ALICE, description="ci"),
                acc.ApiToken(
                    name="tokens/aaaaaaaaaaaaaaaa",
                    principal=ALICE,
                    revoke_time=timestamp_pb2.Timestamp(seconds=1),
                    restriction=acc.TokenRestriction(namespaces=["fraud"], max_role=acc.ROLE_EDITOR),
                ),
            ]
        )

    def revoke_token(self, request: acc.RevokeApiTokenRequest, context: grpc.ServicerContext) -> acc.ApiToken:
        self._caller(context)
        self.requests.append(request)
        return acc.ApiToken(
            name=request.name, principal=ALICE, revoke_time=timestamp_pb2.Timestamp(seconds=1)
        )

    def grant(self, request: acc.GrantRoleRequest, context: grpc.ServicerContext) -> acc.RoleBinding:
        if self._caller(context) != "admin":
            context.set_trailing_metadata(
                _trailers(
                    "IAM_PERMISSION_DENIED",
                    permission="roles.grant",
                    resource=request.parent,
                    principal=ALICE,
                )
            )
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"{ALICE} may not grant roles in {request.parent}"
            )
        self.requests.append(request)
        return acc.RoleBinding(parent=request.parent, principal=request.principal, role=request.role)

    def revoke(self, request: acc.RevokeRoleRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self._caller(context)
        self.requests.append(request)
        return empty_pb2.Empty()

    def bindings(
        self, request: acc.ListRoleBindingsRequest, context: grpc.ServicerContext
    ) -> acc.ListRoleBindingsResponse:
        self._caller(context)
        self.requests.append(request)
        return acc.ListRoleBindingsResponse(
            bindings=[
                acc.RoleBinding(parent=request.parent, principal="user:bob@example.com", role=acc.ROLE_EDITOR)
            ]
        )


def _unary(
    behaviour: Any, request: type[message.Message], response: type[message.Message]
) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=request.FromString, response_serializer=response.SerializeToString
    )


@pytest.fixture
def registry() -> Iterator[tuple[str, FakeAccess]]:
    fake = FakeAccess()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    methods = {
        "GetCallerIdentity": _unary(fake.identity, acc.GetCallerIdentityRequest, acc.CallerIdentity),
        "CreateApiToken": _unary(fake.create_token, acc.CreateApiTokenRequest, acc.CreateApiTokenResponse),
        "ListApiTokens": _unary(fake.list_tokens, acc.ListApiTokensRequest, acc.ListApiTokensResponse),
        "RevokeApiToken": _unary(fake.revoke_token, acc.RevokeApiTokenRequest, acc.ApiToken),
        "GrantRole": _unary(fake.grant, acc.GrantRoleRequest, acc.RoleBinding),
        "RevokeRole": _unary(fake.revoke, acc.RevokeRoleRequest, empty_pb2.Empty),
        "ListRoleBindings": _unary(fake.bindings, acc.ListRoleBindingsRequest, acc.ListRoleBindingsResponse),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("modelregistry.v1.AccessService", methods),)
    )
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    server.start()
    yield address, fake
    server.stop(None)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def modelreg(
    registry: tuple[str, FakeAccess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    """`modelreg ARGS...` in this process, with a clean environment and `stdin` as standard input."""
    for key in ("MODELREG_TOKEN", "MODELREG_TOKEN_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MODELREG_METADATA_ADDR", registry[0])
    monkeypatch.setenv("MODELREG_ARTIFACT_ADDR", "127.0.0.1:1")
    monkeypatch.setenv("MODELREG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MODELREG_DATA_DIR", str(tmp_path / "data"))  # no local admin token
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    def run(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Run:
        capsys.readouterr()
        with monkeypatch.context() as scoped:
            scoped.setattr("sys.stdin", io.StringIO(stdin))
            for key, value in (env or {}).items():
                scoped.setenv(key, value)
            try:
                code = app.main(["--timeout", "5", *args])
            except SystemExit as exit_:  # argparse's usage errors
                code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def one_error(run: Run, code: int) -> str:
    assert run.code == code, run
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("modelreg: error: ")
    return lines[0]


def test_login_checks_and_stores_whoami_uses_it_logout_forgets_it(modelreg: Any, tmp_path: Path) -> None:
    signed_in = modelreg("login", stdin=f"{ADMIN_TOKEN}\n")
    assert signed_in.code == 0, signed_in.stderr
    assert ALICE in signed_in.stdout
    stored = tmp_path / "config" / "modelreg" / "credentials"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert ADMIN_TOKEN in stored.read_text()

    me = modelreg("whoami")
    assert me.code == 0, me.stderr
    assert f"principal:      {ALICE}" in me.stdout
    assert "group:ml-team" in me.stdout
    assert f"credential:     credentials file {stored}" in me.stdout
    assert "admin" in me.stdout
    as_json = json.loads(modelreg("whoami", "--output", "json").stdout)
    assert as_json["principal"] == ALICE
    assert as_json["bindings"][0]["role"] == "ROLE_ADMIN"

    assert modelreg("logout").code == 0
    assert not stored.exists()
    again = one_error(modelreg("whoami"), app.EXIT_UNAUTHENTICATED)
    assert "none is configured" in again
    assert "modelreg login" in again
    assert "not signed in" in modelreg("logout").stdout  # nothing to forget is not an error


def test_login_from_a_token_file_and_an_unknown_token_is_not_stored(modelreg: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad-token"
    bad.write_text("mrt_ffffffffffffffff_nobody\n")
    refused = one_error(modelreg("login", "--token-file", str(bad)), app.EXIT_UNAUTHENTICATED)
    assert "UNAUTHENTICATED" in refused
    assert not (tmp_path / "config" / "modelreg" / "credentials").exists()
    good = tmp_path / "good-token"
    good.write_text(ADMIN_TOKEN)
    assert modelreg("login", "--token-file", str(good)).code == 0
    assert modelreg("whoami").code == 0


def test_login_without_a_token_on_stdin_is_a_usage_error(modelreg: Any) -> None:
    error = one_error(modelreg("login", stdin=""), app.EXIT_USAGE)
    assert "--token-file" in error


def test_a_refused_credential_says_where_it_came_from_and_how_to_sign_in(modelreg: Any) -> None:
    error = one_error(modelreg("whoami", env={"MODELREG_TOKEN": "mrt_expired"}), app.EXIT_UNAUTHENTICATED)
    assert "credential from MODELREG_TOKEN" in error
    assert "modelreg login" in error
    assert "mrt_expired" not in error


def test_an_insecure_credentials_file_exits_8_with_the_fix(modelreg: Any, tmp_path: Path) -> None:
    assert modelreg("login", stdin=ADMIN_TOKEN).code == 0
    stored = tmp_path / "config" / "modelreg" / "credentials"
    stored.chmod(0o644)
    error = one_error(modelreg("whoami"), app.EXIT_UNAUTHENTICATED)
    assert f"chmod 600 {stored}" in error


def test_tokens_create_prints_the_secret_once_with_a_warning(
    modelreg: Any, registry: tuple[str, FakeAccess]
) -> None:
    created = modelreg(
        "tokens",
        "create",
        "--ttl",
        "30d",
        "--namespace",
        "fraud",
        "--namespace",
        "namespaces/ads",
        "--max-role",
        "Editor",
        "--description",
        "ci",
        "-q",
        env={"MODELREG_TOKEN": ADMIN_TOKEN},
    )
    assert created.code == 0, created.stderr
    assert created.stdout == f"mrt_{TOKEN_ID}_new-secret\n"  # SECRET=$(modelreg tokens create -q)
    assert "shown only this once" in created.stderr
    request = registry[1].requests[-1]
    assert isinstance(request, acc.CreateApiTokenRequest)
    assert request.ttl.ToTimedelta() == timedelta(days=30)
    assert list(request.restriction.namespaces) == ["fraud", "ads"]
    assert request.restriction.max_role == acc.ROLE_EDITOR
    assert request.description == "ci"
    assert request.principal == ""  # the caller's own


def test_tokens_list_and_revoke(modelreg: Any, registry: tuple[str, FakeAccess]) -> None:
    env = {"MODELREG_TOKEN": ADMIN_TOKEN}
    listed = modelreg("tokens", "list", "--principal", "-", "--all", env=env)
    assert listed.code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "PRINCIPAL", "STATUS"]
    assert "revoked" in lines[2]
    assert "only in fraud; at most editor" in lines[2]
    request = registry[1].requests[-1]
    assert isinstance(request, acc.ListApiTokensRequest)
    assert (request.principal, request.show_inactive) == ("-", True)

    revoked = modelreg("tokens", "revoke", TOKEN_ID, env=env)
    assert revoked.code == 0, revoked.stderr
    assert registry[1].requests[-1] == acc.RevokeApiTokenRequest(name=f"tokens/{TOKEN_ID}")


def test_revoking_by_secret_is_refused_without_echoing_it(modelreg: Any) -> None:
    secret = f"mrt_{TOKEN_ID}_do-not-print-me"
    error = one_error(
        modelreg("tokens", "revoke", secret, env={"MODELREG_TOKEN": ADMIN_TOKEN}), app.EXIT_USAGE
    )
    assert TOKEN_ID in error
    assert "do-not-print-me" not in error


def test_namespaces_grant_revoke_and_bindings(modelreg: Any, registry: tuple[str, FakeAccess]) -> None:
    env = {"MODELREG_TOKEN": ADMIN_TOKEN}
    granted = modelreg("namespaces", "grant", "-", "user:bob@example.com", "APPROVER", env=env)
    assert granted.code == 0, granted.stderr
    assert granted.stdout == "granted approver in every namespace to user:bob@example.com\n"
    assert registry[1].requests[-1] == acc.GrantRoleRequest(
        parent="namespaces/-", principal="user:bob@example.com", role=acc.ROLE_APPROVER
    )
    assert modelreg("namespaces", "revoke", "fraud", "user:bob@example.com", "editor", env=env).code == 0
    assert registry[1].requests[-1] == acc.RevokeRoleRequest(
        parent="namespaces/fraud", principal="user:bob@example.com", role=acc.ROLE_EDITOR
    )
    listed = modelreg("namespaces", "bindings", "fraud", env=env)
    assert listed.stdout.splitlines()[1].split()[:3] == ["fraud", "user:bob@example.com", "editor"]


def test_a_role_denial_exits_9_naming_the_missing_permission(modelreg: Any) -> None:
    run = modelreg(
        "namespaces", "grant", "fraud", "user:bob@example.com", "editor", env={"MODELREG_TOKEN": VIEWER_TOKEN}
    )
    error = one_error(run, app.EXIT_ROLE_DENIED)
    assert "missing permission roles.grant on namespaces/fraud" in error
    assert error.endswith("[PERMISSION_DENIED IAM_PERMISSION_DENIED]")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["namespaces", "grant", "fraud", "user:bob", "boss"], "argument ROLE"),
        (["tokens", "create", "--max-role", "owner"], "argument --max-role"),
        (["tokens", "create", "--ttl", "30"], "argument --ttl"),
        (["tokens", "create", "--ttl", "1y"], "argument --ttl"),
        (["namespaces", "bindings", "Not_A_Namespace"], "NS"),
        (["tokens", "revoke", "xyz"], "ID"),
        (["whoami", "--token-file", "/nonexistent/token"], "argument --token-file"),
        (["review", "approve", "a/b/1", "--actor", "bob"], "--actor"),  # the credential says who acts
    ],
)
def test_bad_input_exits_2_naming_the_argument(modelreg: Any, args: list[str], named: str) -> None:
    assert named in one_error(modelreg(*args, env={"MODELREG_TOKEN": ADMIN_TOKEN}), app.EXIT_USAGE)


def test_durations() -> None:
    assert duration("30d") == timedelta(days=30)
    assert duration("1d12h") == timedelta(hours=36)
    assert duration("90m") == timedelta(minutes=90)
    assert duration("2w") == timedelta(weeks=2)


def _rpc_error(code: grpc.StatusCode, reason: str = "", **metadata: str) -> errors.RegistryError:
    class Failed(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return code

        def details(self) -> str:
            return "refused"

        def trailing_metadata(self) -> Any:
            return _trailers(reason, **metadata) if reason else ()

    return errors.from_rpc_error(Failed())


def test_permission_denied_by_role_is_its_own_type_other_denials_stay_permission_denied() -> None:
    denied = _rpc_error(
        grpc.StatusCode.PERMISSION_DENIED, "IAM_PERMISSION_DENIED", permission="models.create"
    )
    assert isinstance(denied, errors.RoleDenied)
    assert isinstance(denied, errors.PermissionDenied)
    assert denied.permission == "models.create"
    four_eyes = _rpc_error(grpc.StatusCode.PERMISSION_DENIED, "SELF_APPROVAL_NOT_ALLOWED")
    assert type(four_eyes) is errors.PermissionDenied
    unauthenticated = _rpc_error(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED", problem="revoked")
    assert isinstance(unauthenticated, errors.Unauthenticated)
    assert unauthenticated.problem == "revoked"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (_rpc_error(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED", problem="expired"), 8),
        (CredentialError("credentials file is too open"), 8),
        (_rpc_error(grpc.StatusCode.PERMISSION_DENIED, "IAM_PERMISSION_DENIED", permission="x.y"), 9),
        (_rpc_error(grpc.StatusCode.PERMISSION_DENIED, "SELF_APPROVAL_NOT_ALLOWED"), 7),
        (_rpc_error(grpc.StatusCode.PERMISSION_DENIED), 7),
        (_rpc_error(grpc.StatusCode.NOT_FOUND), 3),
        (_rpc_error(grpc.StatusCode.FAILED_PRECONDITION), 4),
        (_rpc_error(grpc.StatusCode.UNAVAILABLE), 6),
    ],
)
def test_exit_codes(error: Exception, code: int) -> None:
    assert app._exit_code(error) == code
