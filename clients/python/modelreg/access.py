"""Roles, role-binding parents and API token names as people type them, for the AccessService.

Roles per namespace, each including the ones before it: viewer (read, search, pull), editor
(create and push, submit for review, move unprotected aliases), approver (approve or reject, move
protected aliases), admin (settings, alias protection, role bindings, delete, purge). A binding
on `namespaces/-` holds in every namespace.
"""

from __future__ import annotations

import re
from typing import TypeAlias

from modelreg_api import names
from modelregistry.v1 import access_service_pb2 as acc

# "viewer", "editor", "approver", "admin" (any case), or the API's enum value.
RoleLike: TypeAlias = "str | acc.Role.ValueType"

ROLES: dict[str, acc.Role.ValueType] = {
    "viewer": acc.ROLE_VIEWER,
    "editor": acc.ROLE_EDITOR,
    "approver": acc.ROLE_APPROVER,
    "admin": acc.ROLE_ADMIN,
}
EVERY_NAMESPACE = "namespaces/-"
TOKEN_ID = re.compile(r"[0-9a-f]{16}")
# `mrt_{id}_{secret}`: the id is public, the rest is the secret.
_SECRET = re.compile(r"mrt_([0-9a-f]{16})_\S+")


def parse_role(value: RoleLike, field: str = "role") -> acc.Role.ValueType:
    if isinstance(value, str):
        role = ROLES.get(value.strip().lower().removeprefix("role_"))
        if role is not None:
            return role
    elif value in ROLES.values():
        return value
    raise names.InvalidResourceName(field, f"{value!r} is not a role: use viewer, editor, approver or admin")


def role_name(role: acc.Role.ValueType) -> str:
    """`viewer`, `editor`, `approver`, `admin`; `-` for ROLE_UNSPECIFIED."""
    for name, value in ROLES.items():
        if value == role:
            return name
    return "-"


def binding_parent(namespace: str, field: str = "namespace") -> str:
    """`namespaces/{namespace}` for `team` or `namespaces/team`; `namespaces/-` for `-`."""
    if namespace in ("-", EVERY_NAMESPACE):
        return EVERY_NAMESPACE
    if namespace.startswith("namespaces/"):
        return str(names.parse_namespace_name(namespace, field))
    return str(names.NamespaceName(names.check_namespace_id(namespace, field)))


def namespace_id(namespace: str, field: str = "namespaces") -> str:
    """`team` for `team` or `namespaces/team` (a token restriction lists namespace ids)."""
    if namespace.startswith("namespaces/"):
        return names.parse_namespace_name(namespace, field).namespace
    return names.check_namespace_id(namespace, field)


def namespace_of(parent: str) -> str:
    """`team` for `namespaces/team`, `-` for `namespaces/-`."""
    return parent.removeprefix("namespaces/")


def token_name(name_or_id: str, field: str = "token") -> str:
    """`tokens/{id}` for an id or a token name. A secret is refused without repeating it."""
    text = name_or_id.strip()
    secret = _SECRET.fullmatch(text)
    if secret:
        raise names.InvalidResourceName(
            field, f"that is a token's secret; name the token by its id instead: {secret.group(1)}"
        )
    token_id = text.removeprefix("tokens/")
    if not TOKEN_ID.fullmatch(token_id):
        # Not repeated: it might be (part of) a secret pasted in the wrong place.
        raise names.InvalidResourceName(field, "not a token id (16 lowercase hex characters) or tokens/{id}")
    return f"tokens/{token_id}"
