"""API tokens and role bindings as the metadata service keeps them, and their rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from modelreg_api.errors import InvalidArgument
from modelreg_common.access.roles import Role
from modelreg_common.identity.caller import Restriction

MIN_TOKEN_TTL = timedelta(minutes=1)
MAX_TOKEN_TTL = timedelta(days=366)
DEFAULT_TOKEN_TTL = timedelta(days=90)
MAX_DESCRIPTION_CHARS = 256


@dataclass(frozen=True)
class ApiToken:
    token_id: str
    principal: str
    description: str
    restriction: Restriction
    create_time: datetime
    create_actor: str
    expire_time: datetime
    last_used_time: datetime | None = None
    revoke_time: datetime | None = None

    @property
    def name(self) -> str:
        return f"tokens/{self.token_id}"

    def active(self, moment: datetime) -> bool:
        return self.revoke_time is None and self.expire_time > moment


@dataclass(frozen=True)
class RoleBinding:
    namespace: str  # an id, or `-` for every namespace
    principal: str
    role: Role
    create_time: datetime
    create_actor: str

    @property
    def parent(self) -> str:
        return f"namespaces/{self.namespace}"

    @property
    def resource(self) -> str:
        # The role first: a principal may hold `/` (`serviceaccount:ml/trainer`), so it goes last.
        return f"{self.parent}/roleBindings/{self.role.label}/{self.principal}"


def check_ttl(ttl: timedelta | None) -> timedelta:
    if ttl is None:
        return DEFAULT_TOKEN_TTL
    if not MIN_TOKEN_TTL <= ttl <= MAX_TOKEN_TTL:
        raise InvalidArgument("ttl", "must be between 1 minute and 366 days")
    return ttl


def check_description(text: str) -> str:
    if len(text) > MAX_DESCRIPTION_CHARS or not text.isprintable():
        raise InvalidArgument(
            "description", f"must be printable text of at most {MAX_DESCRIPTION_CHARS} characters"
        )
    return text
