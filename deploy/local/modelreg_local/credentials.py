"""API tokens for principals of the local stack, issued by its bootstrap admin (tests, benchmarks)."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from modelreg_api.addresses import grpc_target
from modelregistry.v1 import access_service_pb2 as acc
from modelregistry.v1 import access_service_pb2_grpc

ROLES = {
    "viewer": acc.ROLE_VIEWER,
    "editor": acc.ROLE_EDITOR,
    "approver": acc.ROLE_APPROVER,
    "admin": acc.ROLE_ADMIN,
}


def issue_token(
    address: str,
    admin_token: str,
    principal: str,
    grants: Iterable[tuple[str, str]] = (),
    *,
    description: str = "local",
) -> str:
    """Grant `principal` each (namespace or `-`, role name) of `grants`, then return a new API
    token of it. A blocking call: callers are short scripts and tests of other processes."""
    admin = (("authorization", f"Bearer {admin_token}"),)
    with grpc.insecure_channel(grpc_target(address)) as channel:
        access = access_service_pb2_grpc.AccessServiceStub(channel)
        for namespace, role in grants:
            access.GrantRole(
                acc.GrantRoleRequest(parent=f"namespaces/{namespace}", principal=principal, role=ROLES[role]),
                metadata=admin,
                timeout=30,
            )
        created = access.CreateApiToken(
            acc.CreateApiTokenRequest(principal=principal, description=description),
            metadata=admin,
            timeout=30,
        )
    return created.secret
