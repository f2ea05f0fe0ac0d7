"""The SDK's AccessService methods and its typed authentication errors, against the real stack."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from modelreg import AsyncClient, Client
from modelreg import errors as sdk_errors
from modelreg_local.stack import LocalStack
from modelregistry.v1 import access_service_pb2 as acc

from tests.support import credential_for, unique

pytestmark = pytest.mark.integration

ADMIN = "user:sdk-admin@example.com"


def connect(stack: LocalStack, tmp_path: Path, token: str) -> Client:
    return Client(
        metadata_addr=stack.addresses.metadata,
        artifact_addr=stack.addresses.artifacts,
        token=token,
        cache_dir=tmp_path / "cache",
    )


def test_tokens_and_roles_through_the_blocking_client(stack: LocalStack, tmp_path: Path) -> None:
    user, namespace = f"user:{unique('sdk')}@example.com", unique("ns")
    with connect(stack, tmp_path, credential_for(ADMIN)) as admin:
        me = admin.whoami()
        assert me.principal == ADMIN
        assert ("namespaces/-", acc.ROLE_ADMIN) in [(b.parent, b.role) for b in me.bindings]

        binding = admin.grant_role(namespace, user, "editor")
        assert (binding.parent, binding.principal, binding.role) == (
            f"namespaces/{namespace}",
            user,
            acc.ROLE_EDITOR,
        )
        token, secret = admin.create_token(
            user, description="sdk", ttl=timedelta(hours=1), namespaces=[namespace], max_role="viewer"
        )
        assert token.principal == user
        assert secret.startswith(f"mrt_{token.name.removeprefix('tokens/')}_")

        with connect(stack, tmp_path, secret) as restricted:
            who = restricted.whoami()
            assert who.principal == user
            assert (list(who.restriction.namespaces), who.restriction.max_role) == (
                [namespace],
                acc.ROLE_VIEWER,
            )
            with pytest.raises(sdk_errors.RoleDenied) as denied:
                restricted.create_model(f"{namespace}/{unique()}")
            assert denied.value.permission == "models.create"
            assert denied.value.principal == user

            revoked = admin.revoke_token(token.name.removeprefix("tokens/"))  # by id
            assert revoked.HasField("revoke_time")
            with pytest.raises(sdk_errors.Unauthenticated) as refused:
                restricted.whoami()
            assert refused.value.problem == "revoked"

        assert [b.principal for b in admin.list_role_bindings(namespace)] == [user]
        admin.revoke_role(namespace, user, "editor")
        assert list(admin.list_role_bindings(namespace)) == []
        with pytest.raises(sdk_errors.NotFound):
            admin.revoke_role(namespace, user, "editor")
        listed = list(admin.list_tokens(user, show_inactive=True))
        assert [t.name for t in listed] == [token.name]
        assert not list(admin.list_tokens(user))  # revoked: inactive


async def test_the_async_client_has_the_same_methods(stack: LocalStack, tmp_path: Path) -> None:
    user = f"user:{unique('async')}@example.com"
    async with AsyncClient(
        metadata_addr=stack.addresses.metadata, token=credential_for(user, "viewer", unique("ns"))
    ) as registry:
        assert (await registry.whoami()).principal == user
        token, secret = await registry.create_token(description="own token")
        assert token.principal == user  # for the caller itself
        assert secret.startswith("mrt_")
        assert [t.name async for t in registry.list_tokens()] != []
        with pytest.raises(sdk_errors.RoleDenied):
            await registry.grant_role("-", user, "admin")
    async with AsyncClient(metadata_addr=stack.addresses.metadata, token="") as anonymous:
        with pytest.raises(sdk_errors.Unauthenticated) as missing:
            await anonymous.whoami()
        assert missing.value.problem == "missing"
