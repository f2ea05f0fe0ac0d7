"""API tokens and role bindings: who may create, see and revoke them.

Tokens: a principal manages its own; a global admin (admin on `namespaces/-`) anyone's. A token
acts as its principal, within an optional restriction (namespaces, a role cap). Its secret is
returned once and stored only as a hash. An internal service principal (`service:...`) never gets
an API token: internal credentials come from the services' configuration only, so no admin can
mint one that writes manifests.
Bindings: the namespace's admins (and global admins) grant and revoke; its viewers list them.
"""

from __future__ import annotations

from datetime import timedelta

from modelreg_api.errors import InvalidArgument, NotFound
from modelreg_api.names import parse_namespace_name
from modelreg_common import paging
from modelreg_common.access.bindings import EVERY_NAMESPACE, RoleDirectory
from modelreg_common.access.decisions import CallAccess, denied
from modelreg_common.access.roles import Role
from modelreg_common.context import current_actor
from modelreg_common.identity import api_tokens
from modelreg_common.identity.caller import Restriction
from modelreg_common.identity.principals import GROUP, SERVICE_ACCOUNT, USER, check_principal
from modelreg_common.identity.token_directory import TokenDirectory

from modelreg_metadata.access_records import ApiToken, RoleBinding, check_description, check_ttl
from modelreg_metadata.clock import now
from modelreg_metadata.store import AccessStore

ALL_PRINCIPALS = "-"


class ApiTokens:
    def __init__(self, store: AccessStore, directory: TokenDirectory):
        self._store = store
        self._directory = directory  # this replica's cache: a revocation holds here at once

    async def create(
        self,
        access: CallAccess,
        principal: str,
        description: str,
        ttl: timedelta | None,
        restriction: Restriction,
    ) -> tuple[ApiToken, str]:
        caller = access.caller
        owner = principal or caller.principal
        check_principal(owner, "principal", kinds=(USER, SERVICE_ACCOUNT))
        if owner != caller.principal and not access.is_global_admin():
            raise denied(caller, "tokens.create", owner, Role.ADMIN)
        if owner == caller.principal and not _within(restriction, caller.restriction):
            # A restricted token cannot mint a broader one for its owner.
            raise denied(caller, "tokens.create", owner)
        issued = api_tokens.issue()
        moment = now()
        token = ApiToken(
            token_id=issued.token_id,
            principal=owner,
            description=check_description(description),
            restriction=restriction,
            create_time=moment,
            create_actor=current_actor(),
            expire_time=moment + check_ttl(ttl),
        )
        await self._store.insert_token(token, issued.secret_sha256)
        return token, issued.secret

    async def list_tokens(
        self, access: CallAccess, principal: str, show_inactive: bool, page_size: int, page_token: str
    ) -> tuple[list[ApiToken], str]:
        caller = access.caller
        whose = principal or caller.principal
        if whose != ALL_PRINCIPALS:
            check_principal(whose, "principal", kinds=(USER, SERVICE_ACCOUNT))
        if whose != caller.principal and not access.is_global_admin():
            raise denied(caller, "tokens.list", whose, Role.ADMIN)
        limit = paging.page_size(page_size)
        query = f"tokens:{whose}:{show_inactive}"
        after = paging.decode_token(page_token, query)
        found = await self._store.list_tokens(
            None if whose == ALL_PRINCIPALS else whose,
            active_at=None if show_inactive else now(),
            limit=limit + 1,
            after=str(after[0]) if after else None,
        )
        token = paging.encode_token(query, [found[limit - 1].token_id]) if len(found) > limit else ""
        return found[:limit], token

    async def revoke(self, access: CallAccess, token_id: str) -> ApiToken:
        caller = access.caller
        token = await self._store.get_token(token_id)
        if token.principal != caller.principal and not access.is_global_admin():
            # Someone else's token: as if it did not exist (ids are not secrets, but lists are).
            raise NotFound(f"token tokens/{token_id} not found")
        revoked = await self._store.revoke_token(token_id)
        self._directory.forget(token_id)
        return revoked


def _within(wanted: Restriction, held: Restriction) -> bool:
    if held.namespaces and (not wanted.namespaces or not wanted.namespaces <= held.namespaces):
        return False
    return not (held.max_role is not None and (wanted.max_role is None or wanted.max_role > held.max_role))


class RoleBindings:
    def __init__(self, store: AccessStore, directory: RoleDirectory):
        self._store = store
        self._directory = directory  # this replica's cache: a change holds here at once

    async def grant(self, namespace: str, principal: str, role: Role) -> RoleBinding:
        check_principal(principal, "principal", kinds=(USER, SERVICE_ACCOUNT, GROUP))
        binding = RoleBinding(namespace, principal, role, now(), current_actor())
        granted = await self._store.grant(binding)
        await self._store.advance_epoch()
        self._directory.invalidate()
        return granted

    async def revoke(self, namespace: str, principal: str, role: Role) -> None:
        check_principal(principal, "principal", kinds=(USER, SERVICE_ACCOUNT, GROUP))
        await self._store.revoke(namespace, principal, role)
        await self._store.advance_epoch()
        self._directory.invalidate()

    async def list_bindings(
        self, namespace: str, page_size: int, page_token: str
    ) -> tuple[list[RoleBinding], str]:
        limit = paging.page_size(page_size)
        query = f"bindings:{namespace}"
        after = paging.decode_token(page_token, query)
        found = await self._store.list_bindings(namespace, limit + 1, str(after[0]) if after else None)
        token = ""
        if len(found) > limit:
            last = found[limit - 1]
            token = paging.encode_token(query, [f"{last.namespace}|{last.principal}|{last.role.label}"])
        return found[:limit], token

    async def bindings_of(self, subjects: list[str]) -> list[RoleBinding]:
        return await self._store.bindings_of(subjects)


def check_scope(parent: str, field: str = "parent") -> str:
    """The namespace id of `namespaces/{id}` or `namespaces/-`."""
    prefix = "namespaces/"
    if parent == prefix + EVERY_NAMESPACE:
        return EVERY_NAMESPACE
    if not parent.startswith(prefix):
        raise InvalidArgument(field, f"{parent[:64]!r} is not `namespaces/{{namespace}}` or `namespaces/-`")
    return parse_namespace_name(parent, field).namespace
