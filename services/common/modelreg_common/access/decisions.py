"""Authorization decisions for one call: the caller's roles against the method's permission.

The interceptor builds a `CallAccess` per call with the method's permission (access/permissions.py)
and the caller's roles, fetched once, so every decision below is a dict lookup. Handlers of
namespace-scoped methods call `require` with the resource the request names; list handlers ask
`can_read` or `readable_namespaces` to show only what the caller may see. Either marks the call
as checked; the interceptor fails a call that returned without a check.

How a refusal reads (AIP-211 and AIP-193):
- a resource in a namespace the caller cannot read answers NOT_FOUND with the same message as a
  resource that does not exist, so names of other teams' models do not leak;
- a caller who can read the namespace but lacks the permission gets PERMISSION_DENIED with reason
  IAM_PERMISSION_DENIED and the permission, resource and principal in the ErrorInfo metadata.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from modelreg_api.errors import NotFound, RoleDenied, Unavailable
from modelreg_api.names import AliasName, ModelName, ModelVersionName, NamespaceName
from pymongo.errors import PyMongoError

from modelreg_common.access.bindings import EVERY_NAMESPACE
from modelreg_common.access.permissions import Permission, Scope
from modelreg_common.access.roles import Role
from modelreg_common.identity.caller import Caller

Resource = NamespaceName | ModelName | ModelVersionName | AliasName

_KINDS: dict[type, str] = {
    NamespaceName: "namespace",
    ModelName: "model",
    ModelVersionName: "model version",
    AliasName: "alias",
}


def denied(
    caller: Caller, permission: Permission | str, resource: str, needs: Role | None = None
) -> RoleDenied:
    role = f" (role {needs.label} or higher)" if needs is not None else ""
    return RoleDenied(
        f"{caller.principal} lacks permission {permission} on {resource}{role}",
        metadata={"permission": str(permission), "resource": resource, "principal": caller.principal},
    )


# Re-reads the caller's roles, newer than the ones a refusal was based on (or None: no newer).
Refresh = Callable[[], Awaitable[dict[str, Role] | None]]


class CallAccess:
    def __init__(
        self, caller: Caller, permission: Permission, roles: dict[str, Role], refresh: Refresh | None = None
    ):
        self.caller = caller
        self.permission = permission
        self._roles = roles
        self._refresh = refresh
        self.checked = permission.scope is not Scope.NAMESPACE

    async def _newer_roles(self) -> bool:
        """Before refusing: bindings are cached for seconds, and a grant made a moment ago on
        another replica must not read as a refusal. Revocations still wait for the cache."""
        if self._refresh is None:
            return False
        try:
            roles = await self._refresh()
        except PyMongoError:
            raise Unavailable(
                "cannot check the caller's roles right now (the registry's database is unavailable); retry",
                reason="CREDENTIALS_UNAVAILABLE",
            ) from None
        self._refresh = None  # once per call
        if roles is None:
            return False
        self._roles = roles
        return True

    def role_in(self, namespace: str) -> Role | None:
        """The caller's role in `namespace` (`-`: in every namespace), restriction applied."""
        if self.caller.internal:
            return Role.VIEWER  # internal services read everything; they write only internally
        role = self._roles.get(namespace)
        everywhere = self._roles.get(EVERY_NAMESPACE)
        if everywhere is not None and (role is None or everywhere > role):
            role = everywhere
        return self.caller.restriction.caps(namespace, role)

    async def can_read(self, namespace: str) -> bool:
        self.checked = True
        if self.role_in(namespace) is None and await self._newer_roles():
            return self.role_in(namespace) is not None
        return self.role_in(namespace) is not None

    def sees(self, namespace: str) -> bool:
        """`can_read` for filtering many results at once (no re-read of the bindings)."""
        self.checked = True
        return self.role_in(namespace) is not None

    def readable_namespaces(self) -> frozenset[str] | None:
        """The namespaces the caller can read, or None for all of them."""
        self.checked = True
        if self.role_in(EVERY_NAMESPACE) is not None:
            return None
        return frozenset(ns for ns in self._roles if ns != EVERY_NAMESPACE and self.role_in(ns) is not None)

    def is_global_admin(self) -> bool:
        return self.role_in(EVERY_NAMESPACE) == Role.ADMIN

    async def require(
        self,
        resource: Resource | str,
        *,
        role: Role | None = None,
        permission: str = "",
        hidden: bool = True,
        not_found: str = "",
    ) -> None:
        """Refuse unless the caller holds the method's permission on `resource`'s namespace.

        `resource` is a resource name, or a namespace id (`-` for every namespace). `role` and
        `permission` name a stricter rule of the resource itself (a protected alias), on top of
        the method's own permission. `hidden=False` refuses with PERMISSION_DENIED even where the
        caller cannot read (creating the namespace itself: there is nothing to hide). `not_found`
        replaces the NOT_FOUND message when the caller named something else than `resource`
        (an upload session: its version's name must not leak).
        """
        self.checked = True
        if isinstance(resource, str):
            namespace, shown, kind = resource, f"namespaces/{resource}", "namespace"
        else:
            namespace, shown, kind = resource.namespace, str(resource), _KINDS[type(resource)]
        needed = role or self.permission.role or Role.VIEWER
        held = self.role_in(namespace)
        if (held is None or held < needed) and await self._newer_roles():
            held = self.role_in(namespace)
        if held is None and namespace != EVERY_NAMESPACE and hidden:
            raise NotFound(not_found or f"{kind} {shown} not found")
        if held is None or held < needed:
            raise denied(self.caller, permission or self.permission, shown, needed)


_current: ContextVar[CallAccess | None] = ContextVar("call_access", default=None)


def bind_access(access: CallAccess) -> None:
    _current.set(access)


def current_access() -> CallAccess:
    """The access decisions of the current call (bound by the interceptor before the handler)."""
    access = _current.get()
    if access is None:
        raise RuntimeError("no authorization context: the call did not pass the authentication interceptor")
    return access
