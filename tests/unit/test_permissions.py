"""Every RPC of every service has exactly one permission, and the table names nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelreg_common.access.permissions import PERMISSIONS, PUBLIC, Scope, markdown_table, permission_of
from modelreg_common.access.roles import Role
from modelregistry.v1 import (
    access_service_pb2,
    artifact_service_pb2,
    manifest_service_pb2,
    metadata_service_pb2,
)

SERVICES = [
    (metadata_service_pb2, "MetadataService"),
    (artifact_service_pb2, "ArtifactService"),
    (access_service_pb2, "AccessService"),
    (manifest_service_pb2, "ManifestService"),
]


def every_method() -> list[str]:
    return [
        f"/{service.full_name}/{method.name}"
        for module, name in SERVICES
        for service in [module.DESCRIPTOR.services_by_name[name]]
        for method in service.methods
    ]


@pytest.mark.parametrize("method", every_method())
def test_every_rpc_has_a_permission(method: str) -> None:
    permission = permission_of(method)
    assert permission is not None, f"{method} has no permission in modelreg_common/access/permissions.py"
    assert permission.scope is not Scope.PUBLIC
    if permission.scope in (Scope.NAMESPACE, Scope.GLOBAL):
        assert permission.role is not None


def test_the_table_names_only_methods_that_exist() -> None:
    assert set(PERMISSIONS) == set(every_method())


def test_unknown_methods_have_none_and_health_is_public() -> None:
    assert permission_of("/modelregistry.v1.MetadataService/DropEverything") is None
    assert permission_of("/grpc.health.v1.Health/Check") is PUBLIC
    assert permission_of("/grpc.health.v1.Healthy/Check") is None


def test_the_roles_of_the_issue() -> None:
    def role(method: str) -> Role | None:
        return PERMISSIONS[method].role

    md = "/modelregistry.v1.MetadataService/"
    assert role(md + "GetModelVersionByAlias") is Role.VIEWER
    assert role(md + "CreateModelVersion") is Role.EDITOR
    assert role(md + "SubmitModelVersionForReview") is Role.EDITOR
    assert role(md + "ApproveModelVersion") is Role.APPROVER
    assert role(md + "ProtectAlias") is Role.ADMIN
    assert role(md + "PurgeModelVersion") is Role.ADMIN
    assert role("/modelregistry.v1.AccessService/GrantRole") is Role.ADMIN
    assert role("/modelregistry.v1.ArtifactService/UploadFile") is Role.EDITOR
    assert role("/modelregistry.v1.ArtifactService/DownloadFile") is Role.VIEWER
    assert PERMISSIONS["/modelregistry.v1.ManifestService/AddModelVersionFile"].scope is Scope.INTERNAL
    assert PERMISSIONS["/modelregistry.v1.ArtifactService/CollectGarbage"].scope is Scope.GLOBAL


def test_docs_show_the_table_of_the_code() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    start = docs.index("<!-- permission-table")
    shown = docs[docs.index("\n", start) + 1 : docs.index("<!-- /permission-table -->")].strip()
    assert shown == markdown_table(), "docs/security.md: paste markdown_table() between the markers"
