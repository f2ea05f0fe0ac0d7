"""The caller of one RPC, as authentication proved it."""

from __future__ import annotations

from dataclasses import dataclass

from modelreg_common.access.roles import Role


@dataclass(frozen=True, slots=True)
class Restriction:
    """What an API token may do, within what its owner may: some namespaces, a role cap."""

    namespaces: frozenset[str] = frozenset()  # empty: wherever the owner has a role
    max_role: Role | None = None

    def caps(self, namespace: str, role: Role | None) -> Role | None:
        if role is None:
            return None
        if self.namespaces and namespace not in self.namespaces:
            return None
        return min(role, self.max_role) if self.max_role is not None else role

    @property
    def unrestricted(self) -> bool:
        return not self.namespaces and self.max_role is None


UNRESTRICTED = Restriction()


@dataclass(frozen=True, slots=True)
class Caller:
    # The actor: the authenticated principal (or, for an internal service's call on someone's
    # behalf, that someone).
    principal: str
    groups: tuple[str, ...] = ()
    # How it authenticated: `token:<id>`, `jwt:<issuer>`, `mtls:<subject>`, `system`.
    authentication: str = ""
    restriction: Restriction = UNRESTRICTED
    # The internal service that made the call, when it acts for `principal`; empty otherwise.
    via: str = ""
    # The transport credential belongs to an internal service (`MODELREG_INTERNAL_PRINCIPALS`).
    internal: bool = False

    @property
    def subjects(self) -> tuple[str, ...]:
        """Whom role bindings may name to apply to this caller."""
        return (self.principal, *self.groups)


SYSTEM_CALLER = Caller("system:modelreg", authentication="system")
