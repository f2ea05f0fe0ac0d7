"""Roles per namespace. Each includes the ones before it, so a binding is one number to compare.

viewer: read, search, pull. editor: create models and versions, push, submit for review, move
unprotected aliases. approver: approve or reject, move protected aliases (four eyes still apply).
admin: namespace settings, alias protection, role bindings, delete, purge.
The values are those of the `Role` enum in access_service.proto.
"""

from __future__ import annotations

import enum

from modelreg_api.errors import InvalidArgument


class Role(enum.IntEnum):
    VIEWER = 1
    EDITOR = 2
    APPROVER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()


def role_from_proto(value: int, field: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidArgument(
            field, "must be one of ROLE_VIEWER, ROLE_EDITOR, ROLE_APPROVER, ROLE_ADMIN"
        ) from None


def role_from_label(text: str) -> Role:
    return Role[text.upper()]
