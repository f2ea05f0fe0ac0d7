"""What the services need to reach their stores, and the MODELREG_* variables that name external ones."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelreg_common.config import S3Settings, mongodb_uri_problem, parse_flag

from modelreg_local.stores.errors import StoreConfigError

# The local SeaweedFS's access key; its secret is its data dir's own (SeaweedS3Server.secret_path), as a
# secret published here would open S3 to every local user. The MinIO container takes both from here.
DEFAULT_S3_ACCESS_KEY = "modelreg"
DEFAULT_S3_SECRET_KEY = "modelreg-local-secret"  # noqa: S105 - a fixed secret for throwaway test containers
# SeaweedFS accepts any region; naming one spares the minio SDK a GetBucketLocation round trip per bucket.
DEFAULT_S3_REGION = "us-east-1"

ENV_MONGODB_URI = "MODELREG_MONGODB_URI"
ENV_S3_ENDPOINT = "MODELREG_S3_ENDPOINT"
ENV_S3_ACCESS_KEY = "MODELREG_S3_ACCESS_KEY"
ENV_S3_SECRET_KEY = "MODELREG_S3_SECRET_KEY"  # noqa: S105 - the variable's name, not a secret
ENV_S3_SECURE = "MODELREG_S3_SECURE"
ENV_S3_REGION = "MODELREG_S3_REGION"


@dataclass(frozen=True)
class StoreEndpoints:
    """What the services need to connect to their database and object store."""

    mongodb_uri: str
    s3_endpoint: str  # host:port, no scheme
    s3_access_key: str
    s3_secret_key: str = field(repr=False)
    s3_secure: bool = False
    s3_region: str | None = None

    @classmethod
    def from_parts(cls, mongodb_uri: str, s3: S3Settings) -> StoreEndpoints:
        return cls(
            mongodb_uri=mongodb_uri,
            s3_endpoint=s3.endpoint,
            s3_access_key=s3.access_key,
            s3_secret_key=s3.secret_key,
            s3_secure=s3.secure,
            s3_region=s3.region,
        )

    @property
    def s3(self) -> S3Settings:
        return S3Settings(
            self.s3_endpoint, self.s3_access_key, self.s3_secret_key, self.s3_secure, self.s3_region
        )

    def to_environment(self) -> dict[str, str]:
        """The MODELREG_* variables naming these stores (read back by `stores_from_environment`)."""
        env = {
            ENV_MONGODB_URI: self.mongodb_uri,
            ENV_S3_ENDPOINT: self.s3_endpoint,
            ENV_S3_ACCESS_KEY: self.s3_access_key,
            ENV_S3_SECRET_KEY: self.s3_secret_key,
            ENV_S3_SECURE: "true" if self.s3_secure else "false",
        }
        if self.s3_region:
            env[ENV_S3_REGION] = self.s3_region
        return env


@dataclass(frozen=True)
class ExternalStores:
    """The stores the environment names; a store left None is started locally (or in a container)."""

    mongodb_uri: str | None = None
    s3: S3Settings | None = None

    def endpoints(self) -> StoreEndpoints | None:
        if self.mongodb_uri is None or self.s3 is None:
            return None
        return StoreEndpoints.from_parts(self.mongodb_uri, self.s3)


def env_value(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None  # an empty variable counts as unset (`FOO= make run`)


def _check_mongodb_uri(uri: str) -> str:
    problem = mongodb_uri_problem(ENV_MONGODB_URI, uri)
    if problem is not None:
        raise StoreConfigError(problem)
    return uri


def _check_s3_endpoint(endpoint: str) -> str:
    if "://" in endpoint:
        raise StoreConfigError(
            f"{ENV_S3_ENDPOINT} must be host[:port] without a scheme, got {endpoint!r} "
            f"(use {ENV_S3_SECURE}=true for https)"
        )
    if "/" in endpoint or "@" in endpoint or any(c.isspace() for c in endpoint):
        raise StoreConfigError(
            f"{ENV_S3_ENDPOINT} must be host[:port] with no path or user, got {endpoint!r}"
        )
    host, sep, port = endpoint.rpartition(":")
    if sep and not host.endswith("]") and ":" in host:
        raise StoreConfigError(f"{ENV_S3_ENDPOINT}: write IPv6 hosts as [addr]:port, got {endpoint!r}")
    if sep and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        raise StoreConfigError(f"{ENV_S3_ENDPOINT} has an invalid host or port: {endpoint!r}")
    return endpoint


def _parse_bool(name: str, value: str) -> bool:
    parsed = parse_flag(value)
    if parsed is None:
        raise StoreConfigError(f"{name} must be true or false, got {value!r}")
    return parsed


def parse_environment(env: Mapping[str, str]) -> ExternalStores:
    """Read the external-store override from MODELREG_* variables; raise StoreConfigError when inconsistent.

    MODELREG_MONGODB_URI names an external MongoDB-wire server. MODELREG_S3_ENDPOINT names an external S3
    server and then requires MODELREG_S3_ACCESS_KEY and MODELREG_S3_SECRET_KEY; MODELREG_S3_SECURE
    (true/false, default false) and MODELREG_S3_REGION are optional. Either store may be external alone.
    """
    mongodb_uri = env_value(env, ENV_MONGODB_URI)
    if mongodb_uri is not None:
        _check_mongodb_uri(mongodb_uri)

    endpoint = env_value(env, ENV_S3_ENDPOINT)
    s3_names = (ENV_S3_ACCESS_KEY, ENV_S3_SECRET_KEY, ENV_S3_SECURE, ENV_S3_REGION)
    if endpoint is None:
        stray = [name for name in s3_names if env_value(env, name) is not None]
        if stray:
            raise StoreConfigError(
                f"{', '.join(stray)} set but {ENV_S3_ENDPOINT} is not: set it or unset them"
            )
        return ExternalStores(mongodb_uri=mongodb_uri)

    access_key = env_value(env, ENV_S3_ACCESS_KEY)
    secret_key = env_value(env, ENV_S3_SECRET_KEY)
    missing = [
        name
        for name, value in ((ENV_S3_ACCESS_KEY, access_key), (ENV_S3_SECRET_KEY, secret_key))
        if not value
    ]
    if access_key is None or secret_key is None:
        raise StoreConfigError(f"{ENV_S3_ENDPOINT} is set, so {' and '.join(missing)} must be set too")
    secure_text = env_value(env, ENV_S3_SECURE)
    s3 = S3Settings(
        endpoint=_check_s3_endpoint(endpoint),
        access_key=access_key,
        secret_key=secret_key,
        secure=_parse_bool(ENV_S3_SECURE, secure_text) if secure_text else False,
        region=env_value(env, ENV_S3_REGION),
    )
    return ExternalStores(mongodb_uri=mongodb_uri, s3=s3)


def stores_from_environment(env: Mapping[str, str]) -> StoreEndpoints | None:
    """Endpoints of external servers when the environment names both stores, else None.

    Raises StoreConfigError on inconsistent variables; use `parse_environment` for the per-store view.
    """
    return parse_environment(env).endpoints()
