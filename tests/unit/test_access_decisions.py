"""API token format and the authorization decisions, without servers."""

from __future__ import annotations

import pytest
from modelreg_api.errors import InvalidArgument, NotFound, PermissionDenied
from modelreg_api.names import ModelName, NamespaceName
from modelreg_common.access.decisions import CallAccess
from modelreg_common.access.permissions import PERMISSIONS
from modelreg_common.access.roles import Role
from modelreg_common.identity import api_tokens
from modelreg_common.identity.caller import Caller, Restriction
from modelreg_common.identity.principals import check_principal

CREATE_MODEL = PERMISSIONS["/modelregistry.v1.MetadataService/CreateModel"]
GET_MODEL = PERMISSIONS["/modelregistry.v1.MetadataService/GetModel"]


def test_api_tokens_are_recognisable_random_and_stored_as_a_hash() -> None:
    first, second = api_tokens.issue(), api_tokens.issue()
    assert first.secret.startswith("mrt_")
    assert first.secret != second.secret
    token_id, secret = api_tokens.parse(first.secret) or ("", "")
    assert token_id == first.token_id
    assert len(secret) == 43  # 32 random bytes, unpadded base64url: 256 bits
    assert first.secret_sha256 != secret
    assert api_tokens.matches(first.secret_sha256, secret)
    assert not api_tokens.matches(first.secret_sha256, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert api_tokens.parse("mrt_short") is None
    assert api_tokens.parse(first.secret + "x") is None


@pytest.mark.parametrize(
    "principal", ["user:alice@example.com", "serviceaccount:ml/trainer", "group:ml-team"]
)
def test_principals(principal: str) -> None:
    assert check_principal(principal, "principal") == principal


@pytest.mark.parametrize(
    "principal",
    ["alice", "user:", "user:a b", "robot:x", "serviceaccount:ml", "service:artifacts", "user:a|b"],
)
def test_not_principals(principal: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_principal(principal, "principal")
    assert caught.value.field == "principal"


async def test_a_role_in_every_namespace_counts_everywhere() -> None:
    access = CallAccess(Caller("user:a"), CREATE_MODEL, {"-": Role.EDITOR})
    await access.require(ModelName("anywhere", "m"))
    assert access.checked


async def test_hidden_or_denied() -> None:
    viewer = CallAccess(Caller("user:v"), CREATE_MODEL, {"team": Role.VIEWER})
    with pytest.raises(PermissionDenied) as denied:
        await viewer.require(NamespaceName("team"))
    assert denied.value.reason == "IAM_PERMISSION_DENIED"
    assert denied.value.metadata["permission"] == "models.create"
    with pytest.raises(NotFound, match="model namespaces/other/models/m not found"):
        await viewer.require(ModelName("other", "m"))


async def test_a_restriction_caps_the_role_and_the_namespaces() -> None:
    caller = Caller("user:ci", restriction=Restriction(frozenset({"team"}), Role.VIEWER))
    access = CallAccess(caller, CREATE_MODEL, {"-": Role.ADMIN})
    assert access.role_in("team") is Role.VIEWER
    assert access.role_in("other") is None
    assert not access.is_global_admin()
    with pytest.raises(PermissionDenied):
        await access.require(NamespaceName("team"))


async def test_a_refusal_looks_at_newer_bindings_once() -> None:
    calls = []

    async def newer() -> dict[str, Role] | None:
        calls.append(1)
        return {"team": Role.EDITOR}

    access = CallAccess(Caller("user:new"), CREATE_MODEL, {}, newer)
    await access.require(NamespaceName("team"))  # granted a moment ago, elsewhere
    assert calls == [1]
    reader = CallAccess(Caller("user:r"), GET_MODEL, {"team": Role.VIEWER}, newer)
    await reader.require(NamespaceName("team"))
    assert calls == [1]  # no refusal, no re-read


def test_internal_callers_read_everywhere_and_nothing_more() -> None:
    access = CallAccess(Caller("service:artifacts", internal=True), GET_MODEL, {})
    assert access.role_in("any") is Role.VIEWER
    assert not access.is_global_admin()
