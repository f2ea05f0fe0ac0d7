"""gRPC AccessService: who is calling, API tokens and role bindings (registry/access.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import empty_pb2, timestamp_pb2
from modelreg_api.errors import InvalidArgument
from modelreg_common.access.decisions import current_access
from modelreg_common.access.roles import Role, role_from_proto
from modelreg_common.identity.caller import Restriction
from modelregistry.v1 import access_service_pb2 as pb
from modelregistry.v1 import access_service_pb2_grpc as pb_grpc

from modelreg_metadata.access_records import ApiToken, RoleBinding
from modelreg_metadata.registry.access import ApiTokens, RoleBindings, check_scope

Context = grpc.aio.ServicerContext[Any, Any]
# google.protobuf.Duration's valid range: +-10,000 years.
_MAX_DURATION_SECONDS = 315_576_000_000
_MAX_NANOS = 999_999_999
_TOKEN_PREFIX = "tokens/"


def _timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _restriction_to_proto(restriction: Restriction) -> pb.TokenRestriction:
    return pb.TokenRestriction(
        namespaces=sorted(restriction.namespaces),
        max_role=int(restriction.max_role or 0),  # type: ignore[arg-type]
    )


def _restriction_from_proto(message: pb.TokenRestriction) -> Restriction:
    namespaces = frozenset(message.namespaces)
    for i, namespace in enumerate(message.namespaces):
        check_scope(f"namespaces/{namespace}", f"restriction.namespaces[{i}]")
    max_role = role_from_proto(message.max_role, "restriction.max_role") if message.max_role else None
    return Restriction(namespaces, max_role)


def _token_to_proto(token: ApiToken) -> pb.ApiToken:
    return pb.ApiToken(
        name=token.name,
        principal=token.principal,
        description=token.description,
        restriction=_restriction_to_proto(token.restriction),
        create_time=_timestamp(token.create_time),
        create_actor=token.create_actor,
        expire_time=_timestamp(token.expire_time),
        last_used_time=_timestamp(token.last_used_time),
        revoke_time=_timestamp(token.revoke_time),
    )


def _binding_to_proto(binding: RoleBinding) -> pb.RoleBinding:
    return pb.RoleBinding(
        parent=binding.parent,
        principal=binding.principal,
        role=int(binding.role),  # type: ignore[arg-type]
        create_time=_timestamp(binding.create_time),
        create_actor=binding.create_actor,
    )


def _token_id(name: str) -> str:
    token_id = name.removeprefix(_TOKEN_PREFIX)
    if not name.startswith(_TOKEN_PREFIX) or len(token_id) != 16 or not token_id.isalnum():
        raise InvalidArgument("name", f"{name[:40]!r} is not `tokens/{{id}}` (16 hex characters)")
    return token_id


def _role(value: int) -> Role:
    if not value:
        raise InvalidArgument("role", "is required: ROLE_VIEWER, ROLE_EDITOR, ROLE_APPROVER or ROLE_ADMIN")
    return role_from_proto(value, "role")


class AccessServicer(pb_grpc.AccessServiceServicer):
    def __init__(self, tokens: ApiTokens, bindings: RoleBindings):
        self._tokens = tokens
        self._bindings = bindings

    async def GetCallerIdentity(
        self, request: pb.GetCallerIdentityRequest, context: Context
    ) -> pb.CallerIdentity:
        caller = current_access().caller
        bindings = await self._bindings.bindings_of(list(caller.subjects))
        return pb.CallerIdentity(
            principal=caller.principal,
            groups=list(caller.groups),
            authentication=caller.authentication,
            bindings=[_binding_to_proto(b) for b in bindings],
            restriction=None
            if caller.restriction.unrestricted
            else _restriction_to_proto(caller.restriction),
        )

    async def CreateApiToken(
        self, request: pb.CreateApiTokenRequest, context: Context
    ) -> pb.CreateApiTokenResponse:
        ttl = None
        if request.HasField("ttl"):
            if abs(request.ttl.seconds) > _MAX_DURATION_SECONDS or abs(request.ttl.nanos) > _MAX_NANOS:
                # Beyond what a Duration may hold, and what timedelta can represent.
                raise InvalidArgument("ttl", f"seconds={request.ttl.seconds} is not a valid duration")
            ttl = timedelta(seconds=request.ttl.seconds, microseconds=request.ttl.nanos // 1000)
        restriction = _restriction_from_proto(request.restriction)
        token, secret = await self._tokens.create(
            current_access(), request.principal, request.description, ttl, restriction
        )
        return pb.CreateApiTokenResponse(token=_token_to_proto(token), secret=secret)

    async def ListApiTokens(
        self, request: pb.ListApiTokensRequest, context: Context
    ) -> pb.ListApiTokensResponse:
        tokens, next_token = await self._tokens.list_tokens(
            current_access(), request.principal, request.show_inactive, request.page_size, request.page_token
        )
        return pb.ListApiTokensResponse(
            tokens=[_token_to_proto(t) for t in tokens], next_page_token=next_token
        )

    async def RevokeApiToken(self, request: pb.RevokeApiTokenRequest, context: Context) -> pb.ApiToken:
        token = await self._tokens.revoke(current_access(), _token_id(request.name))
        return _token_to_proto(token)

    async def GrantRole(self, request: pb.GrantRoleRequest, context: Context) -> pb.RoleBinding:
        namespace = check_scope(request.parent)
        role = _role(request.role)
        await current_access().require(namespace)
        return _binding_to_proto(await self._bindings.grant(namespace, request.principal, role))

    async def RevokeRole(self, request: pb.RevokeRoleRequest, context: Context) -> empty_pb2.Empty:
        namespace = check_scope(request.parent)
        role = _role(request.role)
        await current_access().require(namespace)
        await self._bindings.revoke(namespace, request.principal, role)
        return empty_pb2.Empty()

    async def ListRoleBindings(
        self, request: pb.ListRoleBindingsRequest, context: Context
    ) -> pb.ListRoleBindingsResponse:
        namespace = check_scope(request.parent)
        await current_access().require(namespace)
        bindings, next_token = await self._bindings.list_bindings(
            namespace, request.page_size, request.page_token
        )
        return pb.ListRoleBindingsResponse(
            bindings=[_binding_to_proto(b) for b in bindings], next_page_token=next_token
        )
