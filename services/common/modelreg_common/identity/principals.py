"""Principals: the typed names of whoever acts on the registry.

`user:alice@example.com` (a person, from an API token, a JWT or a client certificate),
`serviceaccount:ml/trainer` (a Kubernetes service account), `group:ml-team` (a group claim of a
JWT; it appears in role bindings, never as an actor) and `service:artifacts` (an internal service,
known only from the services' own configuration, never from an API token).
"""

from __future__ import annotations

import re

from modelreg_api.errors import InvalidArgument

USER = "user"
SERVICE_ACCOUNT = "serviceaccount"
GROUP = "group"
SERVICE = "service"

# Printable, no whitespace, none of the separators our stored keys use (`|`), at most 256 chars.
_PRINCIPAL = re.compile(r"(user|serviceaccount|group|service):[^\s|]{1,247}")
_SERVICE_ACCOUNT = re.compile(r"serviceaccount:[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?")

# The registry's own changes (the bootstrap admin's binding, retention's purges).
SYSTEM = "system:modelreg"


def kind_of(principal: str) -> str:
    return principal.partition(":")[0]


def check_principal(
    value: str, field: str, *, kinds: tuple[str, ...] = (USER, SERVICE_ACCOUNT, GROUP)
) -> str:
    """`value` if it is a principal of one of `kinds`, else INVALID_ARGUMENT naming `field`."""
    shown = value[:64]
    if not _PRINCIPAL.fullmatch(value) or not value.isprintable():
        raise InvalidArgument(
            field,
            f"{shown!r} is not a principal: write `user:<name>`, `serviceaccount:<namespace>/<name>` "
            "or `group:<name>`",
        )
    if kind_of(value) not in kinds:
        raise InvalidArgument(field, f"{shown!r}: only {', '.join(k + ':' for k in kinds)} principals here")
    if kind_of(value) == SERVICE_ACCOUNT and not _SERVICE_ACCOUNT.fullmatch(value):
        raise InvalidArgument(field, f"{shown!r}: a service account is `serviceaccount:<namespace>/<name>`")
    return value
