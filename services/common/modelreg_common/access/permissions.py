"""The permission of every RPC of both services: the one table authorization reads.

Every method has exactly one permission. The authentication interceptor looks the method up
before the handler runs (a method missing here is refused, never let through) and, for
namespace-scoped permissions, the handler names the namespace of the resource it acts on
(`access.decisions.CallAccess.require`); the interceptor fails a call whose handler never did,
so a forgotten check cannot pass silently. docs/security.md shows this table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from modelreg_common.access.roles import Role


class Scope(enum.Enum):
    # No credential needed: health checks (kubelet probes) and server reflection.
    PUBLIC = "public"
    # Any authenticated caller; the handler narrows what it returns (your own tokens, the
    # namespaces you can read).
    AUTHENTICATED = "authenticated"
    # The caller's role in the namespace of the resource the request names.
    NAMESPACE = "namespace"
    # The caller's role in every namespace (a binding on `namespaces/-`).
    GLOBAL = "global"
    # Internal services only (the artifact service's own credential).
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Permission:
    name: str
    scope: Scope
    role: Role | None = None  # the least role that holds it (NAMESPACE and GLOBAL scopes)

    def __str__(self) -> str:
        return self.name


def _ns(name: str, role: Role) -> Permission:
    return Permission(name, Scope.NAMESPACE, role)


V, E, A, ADM = Role.VIEWER, Role.EDITOR, Role.APPROVER, Role.ADMIN
_METADATA = "/modelregistry.v1.MetadataService/"
_ARTIFACTS = "/modelregistry.v1.ArtifactService/"
_ACCESS = "/modelregistry.v1.AccessService/"
_MANIFESTS = "/modelregistry.v1.ManifestService/"

PERMISSIONS: dict[str, Permission] = {
    # Namespaces
    _METADATA + "CreateNamespace": _ns("namespaces.create", ADM),
    _METADATA + "GetNamespace": _ns("namespaces.get", V),
    _METADATA + "ListNamespaces": Permission("namespaces.list", Scope.AUTHENTICATED),
    _METADATA + "UpdateNamespace": _ns("namespaces.update", ADM),
    # Models
    _METADATA + "CreateModel": _ns("models.create", E),
    _METADATA + "GetModel": _ns("models.get", V),
    _METADATA + "ListModels": _ns("models.list", V),
    _METADATA + "UpdateModel": _ns("models.update", E),
    _METADATA + "DeleteModel": _ns("models.delete", ADM),
    _METADATA + "UndeleteModel": _ns("models.undelete", ADM),
    # Versions
    _METADATA + "CreateModelVersion": _ns("versions.create", E),
    _METADATA + "GetModelVersion": _ns("versions.get", V),
    _METADATA + "ListModelVersions": _ns("versions.list", V),
    _METADATA + "UpdateModelVersion": _ns("versions.update", E),
    _METADATA + "DeleteModelVersion": _ns("versions.delete", ADM),
    _METADATA + "UndeleteModelVersion": _ns("versions.undelete", ADM),
    _METADATA + "PurgeModelVersion": _ns("versions.purge", ADM),
    _METADATA + "ArchiveModelVersion": _ns("versions.archive", E),
    _METADATA + "UnarchiveModelVersion": _ns("versions.unarchive", E),
    _METADATA + "SealModelVersion": _ns("versions.seal", E),
    # Aliases (moving a protected one also takes the approver role: a rule of the protection,
    # checked with the alias's other rules, see registry/aliases.py)
    _METADATA + "SetAlias": _ns("aliases.set", E),
    _METADATA + "GetAlias": _ns("aliases.get", V),
    _METADATA + "ListAliases": _ns("aliases.list", V),
    _METADATA + "DeleteAlias": _ns("aliases.delete", E),
    _METADATA + "GetModelVersionByAlias": _ns("versions.get", V),
    # Metrics and comparison
    _METADATA + "LogMetrics": _ns("metrics.log", E),
    _METADATA + "ListMetricHistory": _ns("metrics.list", V),
    _METADATA + "CompareModelVersions": _ns("versions.compare", V),
    # Review
    _METADATA + "SubmitModelVersionForReview": _ns("reviews.submit", E),
    _METADATA + "ApproveModelVersion": _ns("reviews.approve", A),
    _METADATA + "RejectModelVersion": _ns("reviews.reject", A),
    # Protected aliases
    _METADATA + "ProtectAlias": _ns("aliases.protect", ADM),
    _METADATA + "GetAliasProtection": _ns("aliases.getProtection", V),
    _METADATA + "UnprotectAlias": _ns("aliases.unprotect", ADM),
    # Audit trail (without a namespace: the events of the namespaces the caller can read)
    _METADATA + "ListEvents": _ns("events.list", V),
    _METADATA + "WatchEvents": _ns("events.watch", V),
    _METADATA + "GetStateAtTime": _ns("events.stateAtTime", V),
    # Identity, tokens and bindings (tokens: your own, or anyone's as a global admin)
    _ACCESS + "GetCallerIdentity": Permission("identity.get", Scope.AUTHENTICATED),
    _ACCESS + "CreateApiToken": Permission("tokens.create", Scope.AUTHENTICATED),
    _ACCESS + "ListApiTokens": Permission("tokens.list", Scope.AUTHENTICATED),
    _ACCESS + "RevokeApiToken": Permission("tokens.revoke", Scope.AUTHENTICATED),
    _ACCESS + "GrantRole": _ns("roles.grant", ADM),
    _ACCESS + "RevokeRole": _ns("roles.revoke", ADM),
    _ACCESS + "ListRoleBindings": _ns("roles.list", V),
    # Internal: the artifact service's manifest writes and blob-reference checks
    _MANIFESTS + "AddModelVersionFile": Permission("manifests.write", Scope.INTERNAL),
    _MANIFESTS + "BatchAddModelVersionFiles": Permission("manifests.write", Scope.INTERNAL),
    _MANIFESTS + "CheckBlobReferences": Permission("blobs.checkReferences", Scope.INTERNAL),
    # Artifacts
    _ARTIFACTS + "UploadFile": _ns("artifacts.upload", E),
    _ARTIFACTS + "StartUpload": _ns("artifacts.upload", E),
    _ARTIFACTS + "WriteUpload": _ns("artifacts.upload", E),
    _ARTIFACTS + "GetUploadSession": _ns("artifacts.upload", E),
    _ARTIFACTS + "CancelUploadSession": _ns("artifacts.upload", E),
    _ARTIFACTS + "FindMissingBlobs": _ns("artifacts.upload", E),
    _ARTIFACTS + "DownloadFile": _ns("artifacts.download", V),
    _ARTIFACTS + "VerifyModelVersion": _ns("artifacts.verify", V),
    _ARTIFACTS + "CollectGarbage": Permission("artifacts.collectGarbage", Scope.GLOBAL, ADM),
}

# Health checking and reflection answer without credentials (kubelet probes, grpcurl `list`).
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
PUBLIC = Permission("public", Scope.PUBLIC)


def permission_of(method: str) -> Permission | None:
    if method.startswith(PUBLIC_PREFIXES):
        return PUBLIC
    return PERMISSIONS.get(method)


def markdown_table() -> str:
    """The table as docs/security.md shows it (a unit test keeps the two equal)."""
    who = {
        Scope.AUTHENTICATED: "any signed-in caller",
        Scope.INTERNAL: "internal services only",
        Scope.PUBLIC: "anyone",
    }
    rows = ["| method | permission | who holds it |", "| --- | --- | --- |"]
    for method, permission in PERMISSIONS.items():
        service, name = method.strip("/").split("/")
        if permission.role is None:
            holder = who[permission.scope]
        elif permission.scope is Scope.GLOBAL:
            holder = f"{permission.role.label} in every namespace (`namespaces/-`)"
        else:
            holder = f"{permission.role.label} or above in the namespace"
        rows.append(
            f"| `{service.removeprefix('modelregistry.v1.')}.{name}` | `{permission.name}` | {holder} |"
        )
    return "\n".join(rows)
