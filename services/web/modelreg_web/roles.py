"""Which governance buttons to show: the caller's role in a namespace, from GetCallerIdentity.

Only for showing buttons; the metadata service decides every call (a stale or wrong guess here
costs a refused click, explained on the page, never a permission).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelregistry.v1 import access_service_pb2 as acc


@dataclass(frozen=True, slots=True)
class Abilities:
    role: int = acc.ROLE_UNSPECIFIED

    @property
    def edit(self) -> bool:  # submit for review, move unprotected aliases
        return self.role >= acc.ROLE_EDITOR

    @property
    def approve(self) -> bool:  # approve, reject, move protected aliases
        return self.role >= acc.ROLE_APPROVER

    @property
    def administer(self) -> bool:  # protect aliases
        return self.role >= acc.ROLE_ADMIN

    @property
    def role_name(self) -> str:
        return acc.Role.Name(self.role).removeprefix("ROLE_").lower()  # type: ignore[arg-type]


def abilities(identity: acc.CallerIdentity, namespace: str) -> Abilities:
    parents = {"namespaces/-", f"namespaces/{namespace}"}
    role = max((b.role for b in identity.bindings if b.parent in parents), default=acc.ROLE_UNSPECIFIED)
    restriction = identity.restriction
    if restriction.namespaces and not ({namespace, f"namespaces/{namespace}"} & set(restriction.namespaces)):
        role = acc.ROLE_UNSPECIFIED
    if restriction.max_role:
        role = min(role, restriction.max_role)
    return Abilities(role)
