"""Every RPC of both services against callers who must be refused, each with the right code.

- no credentials, a malformed one, an expired token, a revoked token: UNAUTHENTICATED;
- a principal whose roles are in another namespace: the resource is as if it did not exist
  (NOT_FOUND, or an empty answer where a missing namespace gives one), and global or internal
  methods are PERMISSION_DENIED;
- a viewer of the namespace calling a method that needs more: PERMISSION_DENIED with reason
  IAM_PERMISSION_DENIED naming the method's permission (modelreg_common/access/permissions.py).
The table of methods comes from the protos, so a new RPC is in this matrix by construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from modelreg_common.access.permissions import PERMISSIONS, Scope
from modelreg_common.access.roles import Role
from modelreg_local.stack import LocalStack
from modelregistry.v1 import access_service_pb2 as acc
from modelregistry.v1 import access_service_pb2_grpc, model_pb2
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import manifest_service_pb2 as mf
from modelregistry.v1 import metadata_service_pb2 as md
from pymongo import MongoClient

from tests.support import ACTOR, bearer, credential_for, error_info, error_metadata, unique

pytestmark = pytest.mark.integration

DATA = b"0123456789" * 1000
SHA = hashlib.sha256(DATA).hexdigest()


@dataclass(frozen=True)
class World:
    """Namespace `ns` with model m, version 1 (with a file) and an open upload session."""

    ns: str
    session: str

    @property
    def namespace(self) -> str:
        return f"namespaces/{self.ns}"

    @property
    def model(self) -> str:
        return f"{self.namespace}/models/m"

    @property
    def version(self) -> str:
        return f"{self.model}/versions/1"

    @property
    def alias(self) -> str:
        return f"{self.model}/aliases/prod"


def requests(world: World) -> dict[str, Message]:
    ns, model, version, alias = world.namespace, world.model, world.version, world.alias
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    spec = art.UploadSpec(model_version=version, path="other.bin", size_bytes=len(DATA), sha256=SHA)
    file = model_pb2.ModelFile(path="forged.bin", size_bytes=5, sha256=SHA)
    m, a, i, f = (
        "/modelregistry.v1.MetadataService/",
        "/modelregistry.v1.ArtifactService/",
        "/modelregistry.v1.AccessService/",
        "/modelregistry.v1.ManifestService/",
    )
    return {
        m + "CreateNamespace": md.CreateNamespaceRequest(namespace_id=world.ns),
        m + "GetNamespace": md.GetNamespaceRequest(name=ns),
        m + "ListNamespaces": md.ListNamespacesRequest(),
        m + "UpdateNamespace": md.UpdateNamespaceRequest(
            namespace=model_pb2.Namespace(name=ns, description="x")
        ),
        m + "CreateModel": md.CreateModelRequest(parent=ns, model_id="another"),
        m + "GetModel": md.GetModelRequest(name=model),
        m + "ListModels": md.ListModelsRequest(parent=ns),
        m + "UpdateModel": md.UpdateModelRequest(model=model_pb2.Model(name=model, description="x")),
        m + "DeleteModel": md.DeleteModelRequest(name=model),
        m + "UndeleteModel": md.UndeleteModelRequest(name=model),
        m + "CreateModelVersion": md.CreateModelVersionRequest(parent=model),
        m + "GetModelVersion": md.GetModelVersionRequest(name=version),
        m + "ListModelVersions": md.ListModelVersionsRequest(parent=model),
        m + "UpdateModelVersion": md.UpdateModelVersionRequest(
            model_version=model_pb2.ModelVersion(name=version, description="x")
        ),
        m + "DeleteModelVersion": md.DeleteModelVersionRequest(name=version),
        m + "UndeleteModelVersion": md.UndeleteModelVersionRequest(name=version),
        m + "PurgeModelVersion": md.PurgeModelVersionRequest(name=version),
        m + "ArchiveModelVersion": md.ArchiveModelVersionRequest(name=version),
        m + "UnarchiveModelVersion": md.UnarchiveModelVersionRequest(name=version),
        m + "SealModelVersion": md.SealModelVersionRequest(name=version),
        m + "SetAlias": md.SetAliasRequest(name=alias, model_version=version),
        m + "GetAlias": md.GetAliasRequest(name=alias),
        m + "ListAliases": md.ListAliasesRequest(parent=model),
        m + "DeleteAlias": md.DeleteAliasRequest(name=alias),
        m + "GetModelVersionByAlias": md.GetModelVersionByAliasRequest(name=alias),
        m + "LogMetrics": md.LogMetricsRequest(
            model_version=version, points=[model_pb2.MetricPoint(key="auc", value=0.5, step=1)]
        ),
        m + "ListMetricHistory": md.ListMetricHistoryRequest(model_version=version, metric_key="auc"),
        m + "CompareModelVersions": md.CompareModelVersionsRequest(names=[version]),
        m + "SubmitModelVersionForReview": md.SubmitModelVersionForReviewRequest(name=version),
        m + "ApproveModelVersion": md.ApproveModelVersionRequest(name=version),
        m + "RejectModelVersion": md.RejectModelVersionRequest(name=version),
        m + "ProtectAlias": md.ProtectAliasRequest(
            protection=model_pb2.AliasProtection(name=alias, metric_gate="metrics.auc > 0.1")
        ),
        m + "GetAliasProtection": md.GetAliasProtectionRequest(name=alias),
        m + "UnprotectAlias": md.UnprotectAliasRequest(name=alias),
        m + "ListEvents": md.ListEventsRequest(namespace=ns),
        m + "WatchEvents": md.WatchEventsRequest(namespace=ns),
        m + "GetStateAtTime": md.GetStateAtTimeRequest(name=version, time=now),
        i + "GetCallerIdentity": acc.GetCallerIdentityRequest(),
        i + "CreateApiToken": acc.CreateApiTokenRequest(description="matrix"),
        i + "ListApiTokens": acc.ListApiTokensRequest(),
        i + "RevokeApiToken": acc.RevokeApiTokenRequest(name="tokens/0123456789abcdef"),
        i + "GrantRole": acc.GrantRoleRequest(parent=ns, principal="user:mallory", role=acc.ROLE_ADMIN),
        i + "RevokeRole": acc.RevokeRoleRequest(
            parent=ns, principal="user:alice@example.com", role=acc.ROLE_ADMIN
        ),
        i + "ListRoleBindings": acc.ListRoleBindingsRequest(parent=ns),
        f + "AddModelVersionFile": mf.AddModelVersionFileRequest(model_version=version, file=file),
        f + "BatchAddModelVersionFiles": mf.BatchAddModelVersionFilesRequest(
            model_version=version, files=[file]
        ),
        f + "CheckBlobReferences": mf.CheckBlobReferencesRequest(sha256s=[SHA]),
        a + "UploadFile": art.UploadFileRequest(spec=spec),
        a + "StartUpload": art.StartUploadRequest(spec=spec),
        a + "WriteUpload": art.WriteUploadRequest(upload_session=world.session, write_offset=0),
        a + "GetUploadSession": art.GetUploadSessionRequest(name=world.session),
        a + "CancelUploadSession": art.CancelUploadSessionRequest(name=world.session),
        a + "FindMissingBlobs": art.FindMissingBlobsRequest(sha256s=[SHA], model_version=version),
        a + "DownloadFile": art.DownloadFileRequest(model_version=version, path="model.bin"),
        a + "VerifyModelVersion": art.VerifyModelVersionRequest(model_version=version),
        a + "CollectGarbage": art.CollectGarbageRequest(dry_run=True),
    }


METHODS = sorted(PERMISSIONS)


def _serialized(message: Message) -> bytes:
    return message.SerializeToString()


_STREAMING_REQUESTS = {"UploadFile", "WriteUpload"}
_STREAMING_RESPONSES = {"DownloadFile", "WatchEvents"}


async def invoke(
    stack: LocalStack, method: str, request: Message, metadata: Any
) -> grpc.aio.AioRpcError | None:
    """Call `method` as a raw gRPC client would; the error, or None when it succeeded."""
    service, name = method.rsplit("/", 1)
    address = stack.addresses.artifacts if "ArtifactService" in service else stack.addresses.metadata
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            if name in _STREAMING_REQUESTS:

                async def one() -> AsyncIterator[Message]:
                    yield request

                await channel.stream_unary(
                    method, request_serializer=_serialized, response_deserializer=None
                )(one(), metadata=metadata, timeout=10)
            elif name in _STREAMING_RESPONSES:
                call = channel.unary_stream(
                    method, request_serializer=_serialized, response_deserializer=None
                )(request, metadata=metadata, timeout=2)
                async for _ in call:
                    break
            else:
                await channel.unary_unary(method, request_serializer=_serialized, response_deserializer=None)(
                    request, metadata=metadata, timeout=10
                )
        except grpc.aio.AioRpcError as exc:
            return exc
    return None


@pytest.fixture(scope="module")
async def world(stack: LocalStack, metadata: Any, artifacts: Any) -> World:
    ns = unique("acl")
    model = await metadata.CreateModel(
        md.CreateModelRequest(parent=f"namespaces/{ns}", model_id="m"), metadata=ACTOR
    )
    version = await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(parent=model.name), metadata=ACTOR
    )
    session = await artifacts.StartUpload(
        art.StartUploadRequest(
            spec=art.UploadSpec(
                model_version=version.name, path="model.bin", size_bytes=64 * 1024 * 1024, sha256="f" * 64
            )
        ),
        metadata=ACTOR,
    )
    return World(ns, session.name)


def _stored_token(stack: LocalStack, principal: str) -> tuple[str, str]:
    """A fresh API token (its secret and id) of `principal`, made by the bootstrap admin."""
    with grpc.insecure_channel(stack.addresses.metadata) as channel:
        created = access_service_pb2_grpc.AccessServiceStub(channel).CreateApiToken(
            acc.CreateApiTokenRequest(principal=principal), metadata=bearer(stack.admin_token()), timeout=30
        )
    return created.secret, created.token.name.removeprefix("tokens/")


@pytest.fixture(scope="module")
def bad_credentials(stack: LocalStack) -> dict[str, Any]:
    assert stack.stores is not None
    expired, expired_id = _stored_token(stack, f"user:{unique('expired')}")
    client: MongoClient[dict[str, Any]]
    with MongoClient(stack.stores.mongodb_uri) as client:  # as if 91 days had passed
        client["modelreg"]["api_tokens"].update_one(
            {"_id": expired_id}, {"$set": {"expire_time": datetime.now(UTC) - timedelta(hours=1)}}
        )
    revoked, revoked_id = _stored_token(stack, f"user:{unique('revoked')}")
    with grpc.insecure_channel(stack.addresses.metadata) as channel:
        access_service_pb2_grpc.AccessServiceStub(channel).RevokeApiToken(
            acc.RevokeApiTokenRequest(name=f"tokens/{revoked_id}"),
            metadata=bearer(stack.admin_token()),
            timeout=30,
        )
    return {
        "none": (),
        "malformed": (("authorization", "Basic YWxpY2U6c2VjcmV0"),),
        "forged": bearer("mrt_0123456789abcdef_" + "A" * 43),
        "expired": bearer(expired),
        "revoked": bearer(revoked),
        # The old header alone proves nothing.
        "actor header": (("x-modelreg-actor", "user:alice@example.com"),),
    }


@pytest.mark.parametrize("credential", ["none", "malformed", "forged", "expired", "revoked", "actor header"])
@pytest.mark.parametrize("method", METHODS)
async def test_calls_without_valid_credentials_are_unauthenticated(
    stack: LocalStack, world: World, bad_credentials: dict[str, Any], method: str, credential: str
) -> None:
    error = await invoke(stack, method, requests(world)[method], bad_credentials[credential])
    assert error is not None, f"{method} accepted {credential}"
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (method, error.code(), error.details())
    assert error_info(error)[0] == "UNAUTHENTICATED"
    problem = error_metadata(error)["problem"]
    assert problem == {"none": "missing", "actor header": "missing", "forged": "unknown"}.get(
        credential, credential
    )


# Where a namespace the caller cannot see answers as a missing one does instead of NOT_FOUND.
_HIDDEN_OUTCOMES = {
    "/modelregistry.v1.MetadataService/CreateNamespace": grpc.StatusCode.PERMISSION_DENIED,  # nothing to hide
    "/modelregistry.v1.MetadataService/ListModels": None,  # an empty page, as for a missing namespace
    "/modelregistry.v1.MetadataService/ListEvents": None,  # no events, as for a missing namespace
    "/modelregistry.v1.MetadataService/WatchEvents": grpc.StatusCode.DEADLINE_EXCEEDED,  # waits, silent
}


def outsider_outcome(method: str) -> grpc.StatusCode | None:
    permission = PERMISSIONS[method]
    if permission.scope in (Scope.GLOBAL, Scope.INTERNAL):
        return grpc.StatusCode.PERMISSION_DENIED
    if permission.scope is Scope.AUTHENTICATED:
        return grpc.StatusCode.NOT_FOUND if method.endswith("RevokeApiToken") else None
    return _HIDDEN_OUTCOMES.get(method, grpc.StatusCode.NOT_FOUND)


@pytest.mark.parametrize("method", METHODS)
async def test_a_principal_of_another_namespace_sees_nothing_here(
    stack: LocalStack, world: World, method: str
) -> None:
    outsider = bearer(credential_for(unique("outsider"), "admin", unique("elsewhere")))
    error = await invoke(stack, method, requests(world)[method], outsider)
    expected = outsider_outcome(method)
    got = None if error is None else error.code()
    assert got == expected, (method, error and error.details())


async def test_hidden_reads_as_missing(stack: LocalStack, world: World) -> None:
    """The refusal of an outsider and the answer for a model that does not exist read the same."""
    outsider = bearer(credential_for(unique("outsider"), "admin", unique("elsewhere")))
    get = "/modelregistry.v1.MetadataService/GetModel"
    hidden = await invoke(stack, get, md.GetModelRequest(name=world.model), outsider)
    missing = await invoke(stack, get, md.GetModelRequest(name=world.model + "-missing"), ACTOR)
    assert hidden is not None
    assert missing is not None
    assert (hidden.code(), hidden.details()) == (
        missing.code(),
        (missing.details() or "").replace("m-missing", "m"),
    )
    session = await invoke(
        stack,
        "/modelregistry.v1.ArtifactService/GetUploadSession",
        art.GetUploadSessionRequest(name=world.session),
        outsider,
    )
    assert session is not None
    assert session.code() == grpc.StatusCode.NOT_FOUND
    assert world.ns not in (session.details() or "")  # the session's version is not revealed


@pytest.mark.parametrize(
    "method",
    [
        m
        for m in METHODS
        if PERMISSIONS[m].scope is not Scope.AUTHENTICATED and PERMISSIONS[m].role != Role.VIEWER
    ],
)
async def test_a_role_too_small_is_permission_denied_naming_the_permission(
    stack: LocalStack, world: World, method: str
) -> None:
    viewer = bearer(credential_for(unique("viewer"), "viewer", world.ns))
    error = await invoke(stack, method, requests(world)[method], viewer)
    assert error is not None, f"{method} let a viewer through"
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (method, error.code(), error.details())
    assert error_info(error)[0] == "IAM_PERMISSION_DENIED"
    assert error_metadata(error)["permission"] == PERMISSIONS[method].name
    assert PERMISSIONS[method].name in (error.details() or "")


@pytest.mark.parametrize("method", [m for m in METHODS if PERMISSIONS[m].role == Role.VIEWER])
async def test_a_viewer_is_let_through_read_methods(stack: LocalStack, world: World, method: str) -> None:
    viewer = bearer(credential_for(unique("reader"), "viewer", world.ns))
    error = await invoke(stack, method, requests(world)[method], viewer)
    # The resource may not exist (no alias `prod`, no file yet): anything but a refusal.
    if error is not None:
        assert error.code() not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), (
            method,
            error.details(),
        )
