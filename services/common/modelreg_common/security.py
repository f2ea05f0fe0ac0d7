"""Building a service's `Security` (authentication and role lookups) from its settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from modelreg_common.access import bindings
from modelreg_common.access.bindings import RoleDirectory
from modelreg_common.config import ConfigError
from modelreg_common.identity import token_directory
from modelreg_common.identity.authenticator import Authenticator
from modelreg_common.identity.jwt import JwtVerifier, load_issuers
from modelreg_common.identity.settings import IdentitySettings
from modelreg_common.identity.token_directory import TokenDirectory
from modelreg_common.interceptors import Security


async def open_security(
    settings: IdentitySettings, database: AsyncDatabase[dict[str, Any]], *, mtls: bool
) -> tuple[Security, TokenDirectory, Callable[[], Awaitable[None]]]:
    """The service's `Security`, its token directory, and what to call at shutdown."""
    tokens = TokenDirectory(database[token_directory.COLLECTION], ttl_seconds=settings.cache_seconds)
    roles = RoleDirectory(database[bindings.COLLECTION], refresh_seconds=settings.cache_seconds)
    verifier: JwtVerifier | None = None
    if settings.oidc_issuers_file is not None:
        try:
            verifier = JwtVerifier(load_issuers(settings.oidc_issuers_file))
            await verifier.start()
        except ValueError as exc:  # a broken issuers file or JWKS file: the deployment's to fix
            raise ConfigError([f"MODELREG_OIDC_ISSUERS_FILE: {exc}"]) from None
    authenticator = Authenticator(
        tokens,
        jwt=verifier,
        internal=[settings.internal] if settings.internal else [],
        internal_principals=settings.internal_principals,
        mtls_principal_prefix=settings.mtls_principal_prefix if mtls else "",
    )

    async def close() -> None:
        await tokens.close()
        if verifier is not None:
            await verifier.close()

    return Security(authenticator, roles, mtls=mtls), tokens, close
