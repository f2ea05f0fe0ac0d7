"""Authentication settings shared by both services, read once from the environment."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

from modelreg_common.config import EnvReader
from modelreg_common.identity.authenticator import InternalCredential
from modelreg_common.identity.principals import SERVICE, check_principal

# The artifact service's principal when it authenticates with the internal credential file.
ARTIFACT_SERVICE_PRINCIPAL = "service:artifacts"
MAX_CACHE_SECONDS = 5.0  # the bound: a revocation holds everywhere within 5 seconds


@dataclass(frozen=True)
class IdentitySettings:
    # The artifact service's own credential, shared by both services (a mounted secret file).
    internal: InternalCredential | None = None
    # More principals whose calls count as internal (e.g. the artifact service's Kubernetes
    # service account when it signs in with a projected JWT instead of the shared secret).
    internal_principals: tuple[str, ...] = ()
    # OIDC issuers (JSON, identity/jwt.py); unset: no JWTs accepted.
    oidc_issuers_file: Path | None = None
    # mTLS: a verified client certificate's SAN/CN becomes `<prefix><subject>`; "" disables it.
    mtls_principal_prefix: str = "user:"
    # How long a token lookup or the role bindings are reused before being read again.
    cache_seconds: float = 2.0
    # Metadata service only: where the first start writes the bootstrap admin's token.
    bootstrap_token_file: Path | None = None
    problems: list[str] = field(default_factory=list, compare=False)

    @classmethod
    def read(cls, read: EnvReader, *, bootstrap: bool = False) -> IdentitySettings:
        internal_file = read.text("MODELREG_INTERNAL_TOKEN_FILE", "")
        internal = None
        if internal_file:
            secret = _secret_from(read, "MODELREG_INTERNAL_TOKEN_FILE", Path(internal_file))
            if secret:
                internal = InternalCredential(ARTIFACT_SERVICE_PRINCIPAL, secret)
        principals = tuple(
            p.strip() for p in read.text("MODELREG_INTERNAL_PRINCIPALS", "").split(",") if p.strip()
        )
        for principal in principals:
            try:
                check_principal(
                    principal, "MODELREG_INTERNAL_PRINCIPALS", kinds=("user", "serviceaccount", SERVICE)
                )
            except Exception as exc:
                read.problems.append(str(exc))
        issuers = read.text("MODELREG_OIDC_ISSUERS_FILE", "")
        if issuers and not Path(issuers).is_file():
            read.problems.append(f"MODELREG_OIDC_ISSUERS_FILE={issuers!r} is not a readable file")
        bootstrap_file = read.text("MODELREG_BOOTSTRAP_TOKEN_FILE", "") if bootstrap else ""
        if bootstrap_file and not Path(bootstrap_file).parent.is_dir():
            read.problems.append(
                f"MODELREG_BOOTSTRAP_TOKEN_FILE={bootstrap_file!r}: its directory does not exist"
            )
        return cls(
            internal=internal,
            internal_principals=principals,
            oidc_issuers_file=Path(issuers) if issuers else None,
            mtls_principal_prefix=read.text("MODELREG_MTLS_PRINCIPAL_PREFIX", "user:"),
            cache_seconds=read.number(
                "MODELREG_AUTH_CACHE_SECONDS", 2.0, minimum=0, maximum=MAX_CACHE_SECONDS
            ),
            bootstrap_token_file=Path(bootstrap_file) if bootstrap_file else None,
        )


def _secret_from(read: EnvReader, key: str, path: Path) -> str:
    """A secret file's content; refused when others may read it (like ssh refuses a key)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        read.problems.append(f"{key}={str(path)!r}: {exc.strerror}")
        return ""
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Like ssh with a private key. Kubernetes: mount the Secret with `defaultMode: 0400`.
        read.problems.append(f"{key}={str(path)!r} is readable by others: chmod 600 it")
        return ""
    if len(text) < 32:
        read.problems.append(f"{key}={str(path)!r} holds fewer than 32 characters: not a secret")
        return ""
    return text
