"""Malformed requests to the AccessService (and FindMissingBlobs' new field): INVALID_ARGUMENT
naming the field, quoting at most a short prefix of what was sent, never INTERNAL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import duration_pb2
from modelregistry.v1 import access_service_pb2 as acc
from modelregistry.v1 import artifact_service_pb2 as art

from tests.support import error_info, unique

if TYPE_CHECKING:
    from tests.support import AccessStub, ArtifactStub

pytestmark = pytest.mark.integration

LONG = "x" * 5000
NS = "namespaces/bad-input"


def cases() -> list[tuple[str, str, Any, str]]:
    """(id, method, request, the field the error must name)."""

    def grant(parent: str = "") -> acc.GrantRoleRequest:
        return acc.GrantRoleRequest(parent=parent, principal="user:someone@example.com", role=acc.ROLE_VIEWER)

    return [
        ("grant-no-parent", "GrantRole", grant(), "parent"),
        ("grant-foreign-parent", "GrantRole", grant("projects/x"), "parent"),
        (
            "grant-bad-namespace",
            "GrantRole",
            grant("namespaces/UPPER"),
            "parent",
        ),
        ("grant-long-parent", "GrantRole", grant(LONG), "parent"),
        (
            "grant-untyped-principal",
            "GrantRole",
            acc.GrantRoleRequest(parent=NS, principal="someone", role=acc.ROLE_VIEWER),
            "principal",
        ),
        (
            "grant-service-principal",
            "GrantRole",
            acc.GrantRoleRequest(parent=NS, principal="service:artifacts", role=acc.ROLE_ADMIN),
            "principal",
        ),
        (
            "grant-long-principal",
            "GrantRole",
            acc.GrantRoleRequest(parent=NS, principal="user:" + LONG, role=acc.ROLE_VIEWER),
            "principal",
        ),
        ("grant-no-role", "GrantRole", acc.GrantRoleRequest(parent=NS, principal="user:a"), "role"),
        (
            "grant-unknown-role",
            "GrantRole",
            acc.GrantRoleRequest(parent=NS, principal="user:a", role=99),  # type: ignore[arg-type]
            "role",
        ),
        ("revoke-no-role", "RevokeRole", acc.RevokeRoleRequest(parent=NS, principal="user:a"), "role"),
        (
            "revoke-bad-parent",
            "RevokeRole",
            acc.RevokeRoleRequest(parent="x", principal="user:a", role=acc.ROLE_VIEWER),
            "parent",
        ),
        (
            "bindings-bad-parent",
            "ListRoleBindings",
            acc.ListRoleBindingsRequest(parent="namespaces/"),
            "parent",
        ),
        (
            "bindings-page-size",
            "ListRoleBindings",
            acc.ListRoleBindingsRequest(parent=NS, page_size=-1),
            "page_size",
        ),
        (
            "bindings-page-token",
            "ListRoleBindings",
            acc.ListRoleBindingsRequest(parent=NS, page_token="not-a-token"),
            "page_token",
        ),
        ("token-bad-principal", "CreateApiToken", acc.CreateApiTokenRequest(principal="alice"), "principal"),
        (
            "token-short-ttl",
            "CreateApiToken",
            acc.CreateApiTokenRequest(ttl=duration_pb2.Duration(seconds=5)),
            "ttl",
        ),
        (
            "token-long-ttl",
            "CreateApiToken",
            acc.CreateApiTokenRequest(ttl=duration_pb2.Duration(seconds=400 * 86400)),
            "ttl",
        ),
        (
            "token-long-description",
            "CreateApiToken",
            acc.CreateApiTokenRequest(description=LONG),
            "description",
        ),
        (
            "token-bad-namespace",
            "CreateApiToken",
            acc.CreateApiTokenRequest(restriction=acc.TokenRestriction(namespaces=["Not A Namespace"])),
            "restriction.namespaces[0]",
        ),
        (
            "token-unknown-role",
            "CreateApiToken",
            acc.CreateApiTokenRequest(restriction=acc.TokenRestriction(max_role=7)),  # type: ignore[arg-type]
            "restriction.max_role",
        ),
        ("tokens-bad-principal", "ListApiTokens", acc.ListApiTokensRequest(principal="bob"), "principal"),
        ("tokens-page-size", "ListApiTokens", acc.ListApiTokensRequest(page_size=-5), "page_size"),
        ("revoke-token-bad-name", "RevokeApiToken", acc.RevokeApiTokenRequest(name="tokens/../x"), "name"),
        ("revoke-token-long-name", "RevokeApiToken", acc.RevokeApiTokenRequest(name=LONG), "name"),
    ]


@pytest.mark.parametrize(
    ("method", "request_", "field"), [c[1:] for c in cases()], ids=[c[0] for c in cases()]
)
async def test_malformed_access_requests_name_the_field(
    access: AccessStub, method: str, request_: Any, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(access, method)(request_)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert error_info(error)[1] == [field]
    assert len(error.details() or "") < 400  # quotes a prefix of what was sent, not all of it


async def test_find_missing_blobs_needs_the_version_it_is_for(artifacts: ArtifactStub) -> None:
    for request, field in (
        (art.FindMissingBlobsRequest(sha256s=["a" * 64]), "model_version"),
        (art.FindMissingBlobsRequest(sha256s=["a" * 64], model_version="models/x"), "model_version"),
        (
            art.FindMissingBlobsRequest(
                sha256s=["nope"], model_version=f"namespaces/{unique('blobs')}/models/m/versions/1"
            ),
            "sha256s",
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await artifacts.FindMissingBlobs(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value)[1][0].startswith(field)
