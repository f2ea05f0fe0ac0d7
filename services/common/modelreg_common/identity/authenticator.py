"""Authentication: from a call's metadata and transport to a `Caller`, or UNAUTHENTICATED.

Credentials, in order:
1. `authorization: Bearer <credential>` metadata, the way every gRPC client language can send it:
   - the internal credential (`MODELREG_INTERNAL_TOKEN_FILE`): the artifact service's own;
   - an API token `mrt_<id>_<secret>` (identity/api_tokens.py), looked up by id, its secret hash
     compared in constant time, refused when expired or revoked;
   - otherwise a JWT, verified against the configured OIDC issuers (identity/jwt.py), which is
     also how Kubernetes workloads sign in (projected service-account tokens).
2. Without a bearer credential, a verified TLS client certificate (mTLS), its SAN or CN mapped
   to a principal with a configured prefix.
A bearer credential that fails is refused even when a certificate was presented: a caller that
sends the wrong token should learn it, not be silently someone else.

An internal caller may name the end user it acts for (`x-modelreg-on-behalf-of`, the artifact
service adding a verified file for the user who uploaded it); the header is ignored from anyone
else, so nobody can act as someone else by saying so.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from modelreg_api.errors import InvalidArgument, Unauthenticated
from modelreg_api.headers import AUTHORIZATION, ON_BEHALF_OF, ON_BEHALF_OF_AUTHENTICATION

from modelreg_common.identity import api_tokens
from modelreg_common.identity.caller import Caller
from modelreg_common.identity.jwt import JwtRejected, JwtVerifier
from modelreg_common.identity.principals import SERVICE_ACCOUNT, USER, check_principal
from modelreg_common.identity.token_directory import TokenDirectory

_BEARER = "bearer "
_SHOWN = 12  # characters of a rejected credential an error may quote


@dataclass(frozen=True, slots=True)
class InternalCredential:
    """A service's own shared secret (a file mounted into both services) and its principal."""

    principal: str
    secret: str


def _refused(problem: str, message: str) -> Unauthenticated:
    return Unauthenticated(message, reason="UNAUTHENTICATED", metadata={"problem": problem})


class Authenticator:
    def __init__(
        self,
        tokens: TokenDirectory,
        *,
        jwt: JwtVerifier | None = None,
        internal: Iterable[InternalCredential] = (),
        internal_principals: Iterable[str] = (),
        mtls_principal_prefix: str = "",
    ):
        self._tokens = tokens
        self._jwt = jwt
        self._internal = tuple(internal)
        # Principals whose calls count as internal however they authenticated (e.g. the
        # artifact service's Kubernetes service account, or its client certificate).
        self._internal_principals = frozenset(internal_principals) | {c.principal for c in self._internal}
        self._mtls_prefix = mtls_principal_prefix

    async def authenticate(self, metadata: Mapping[str, str], peer_subject: str | None) -> Caller:
        header = metadata.get(AUTHORIZATION, "")
        if header:
            if not header[: len(_BEARER)].lower() == _BEARER:
                raise _refused("malformed", "the authorization metadata must be `Bearer <token>`")
            caller = await self._bearer(header[len(_BEARER) :].strip())
        elif peer_subject and self._mtls_prefix:
            caller = Caller(self._mtls_prefix + peer_subject, authentication=f"mtls:{peer_subject}")
        else:
            raise _refused(
                "missing",
                "no credentials: send `authorization: Bearer <token>` metadata (an API token or a JWT)",
            )
        if caller.principal in self._internal_principals:
            caller = Caller(
                caller.principal, caller.groups, caller.authentication, caller.restriction, internal=True
            )
            return _on_behalf_of(caller, metadata)
        return caller

    async def _bearer(self, credential: str) -> Caller:
        for internal in self._internal:
            if hmac.compare_digest(credential.encode(), internal.secret.encode()):
                return Caller(internal.principal, authentication="internal")
        parsed = api_tokens.parse(credential)
        if parsed is not None:
            return await self._api_token(*parsed)
        if credential.startswith(api_tokens.PREFIX):
            raise _refused("malformed", f"malformed API token {credential[:_SHOWN]}...")
        if self._jwt is None or credential.count(".") != 2:
            raise _refused("malformed", "the credential is neither an API token (mrt_...) nor a JWT")
        try:
            verified = await self._jwt.verify(credential)
        except JwtRejected as exc:
            raise _refused(exc.problem, f"JWT refused: {exc}") from None
        return Caller(verified.principal, verified.groups, authentication=f"jwt:{verified.issuer}")

    async def _api_token(self, token_id: str, secret: str) -> Caller:
        token = await self._tokens.find(token_id)
        if token is None or not api_tokens.matches(token.secret_sha256, secret):
            raise _refused("unknown", f"unknown API token {api_tokens.PREFIX}{token_id}_...")
        if token.revoke_time is not None:
            raise _refused("revoked", f"API token {token_id} was revoked")
        if token.expire_time <= datetime.now(UTC):
            raise _refused("expired", f"API token {token_id} expired at {token.expire_time.isoformat()}")
        self._tokens.touch(token_id)
        return Caller(token.principal, authentication=f"token:{token_id}", restriction=token.restriction)


def _on_behalf_of(service: Caller, metadata: Mapping[str, str]) -> Caller:
    actor = metadata.get(ON_BEHALF_OF, "")
    if not actor:
        return service
    try:
        check_principal(actor, ON_BEHALF_OF, kinds=(USER, SERVICE_ACCOUNT))
    except InvalidArgument:
        raise _refused("malformed", f"{ON_BEHALF_OF} is not a principal") from None
    how = metadata.get(ON_BEHALF_OF_AUTHENTICATION, "")[:200]
    return Caller(actor, authentication=how, via=service.principal, internal=True)
