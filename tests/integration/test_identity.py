"""Identity in use: the forgeries of the issue fail, four eyes hold between real principals,
tokens and bindings work end to end and leave their trail, listings show only what the caller
may see, and a revocation reaches every replica within seconds."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import time
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import duration_pb2
from modelreg_local.stack import LocalStack
from modelregistry.v1 import access_service_pb2 as acc
from modelregistry.v1 import access_service_pb2_grpc, artifact_service_pb2_grpc, model_pb2
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import metadata_service_pb2 as md

from tests.conftest import ReplicaFactory
from tests.support import (
    as_actor,
    bearer,
    credential_for,
    download,
    error_info,
    error_metadata,
    events_when,
    list_all_events,
    unique,
    upload,
)

if TYPE_CHECKING:
    from tests.support import AccessStub, ArtifactStub, MetadataStub

pytestmark = pytest.mark.integration


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def ready_version(metadata: MetadataStub, artifacts: ArtifactStub, ns: str, author: Any) -> str:
    model = await metadata.CreateModel(
        md.CreateModelRequest(parent=f"namespaces/{ns}", model_id=unique()), metadata=author
    )
    version = await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(parent=model.name), metadata=author
    )
    await upload(artifacts, version.name, "model.bin", b"weights", metadata=author)
    await metadata.SealModelVersion(md.SealModelVersionRequest(name=version.name), metadata=author)
    return version.name


async def test_the_actor_header_no_longer_sets_the_approver(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    ns = unique("eyes")
    alice = as_actor(unique("author"), role="approver", namespace=ns)
    version = await ready_version(metadata, artifacts, ns, alice)
    await metadata.SubmitModelVersionForReview(
        md.SubmitModelVersionForReviewRequest(name=version), metadata=alice
    )
    forged = (*alice, ("x-modelreg-actor", "user:someone-else@example.com"))
    error = await refused(
        metadata.ApproveModelVersion(md.ApproveModelVersionRequest(name=version), metadata=forged)
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(error)[0] == "SELF_APPROVAL_NOT_ALLOWED"

    # Four eyes between two real principals: an approver of the namespace may approve.
    reviewer = unique("reviewer")
    approved = await metadata.ApproveModelVersion(
        md.ApproveModelVersionRequest(name=version, comment="ok"),
        metadata=as_actor(reviewer, role="approver", namespace=ns),
    )
    assert approved.reviews[-1].actor == f"user:{reviewer}"
    (event,) = await events_when(metadata, 1, resource=version, actions=["MODEL_VERSION_APPROVED"])
    assert event.actor == f"user:{reviewer}"
    assert event.authentication.startswith("token:")


async def test_protected_aliases_need_an_approver_and_an_identity(
    stack: LocalStack, metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    ns = unique("guard")
    admin = as_actor(unique("owner"), role="admin", namespace=ns)
    version = await ready_version(metadata, artifacts, ns, admin)
    await metadata.SubmitModelVersionForReview(
        md.SubmitModelVersionForReviewRequest(name=version), metadata=admin
    )
    await metadata.ApproveModelVersion(
        md.ApproveModelVersionRequest(name=version),
        metadata=as_actor(unique("approver"), role="approver", namespace=ns),
    )
    alias = version.rsplit("/versions/", 1)[0] + "/aliases/production"
    await metadata.ProtectAlias(
        md.ProtectAliasRequest(protection=model_pb2.AliasProtection(name=alias)), metadata=admin
    )
    move = md.SetAliasRequest(name=alias, model_version=version)
    async with grpc.aio.insecure_channel(stack.addresses.metadata) as channel:
        from modelregistry.v1 import metadata_service_pb2_grpc  # noqa: PLC0415

        anonymous = metadata_service_pb2_grpc.MetadataServiceStub(channel)
        assert (await refused(anonymous.SetAlias(move))).code() == grpc.StatusCode.UNAUTHENTICATED
        assert (
            await refused(anonymous.UnprotectAlias(md.UnprotectAliasRequest(name=alias)))
        ).code() == grpc.StatusCode.UNAUTHENTICATED
        assert (
            await refused(anonymous.PurgeModelVersion(md.PurgeModelVersionRequest(name=version)))
        ).code() == grpc.StatusCode.UNAUTHENTICATED
    editor = as_actor(unique("editor"), role="editor", namespace=ns)
    error = await refused(metadata.SetAlias(move, metadata=editor))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_metadata(error)["permission"] == "aliases.setProtected"
    approver = unique("releaser")
    moved = await metadata.SetAlias(move, metadata=as_actor(approver, role="approver", namespace=ns))
    assert moved.update_actor == f"user:{approver}"


async def test_an_unauthenticated_garbage_collection_is_refused(stack: LocalStack) -> None:
    async with grpc.aio.insecure_channel(stack.addresses.artifacts) as channel:
        stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        error = await refused(stub.CollectGarbage(art.CollectGarbageRequest(dry_run=False)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        editor = bearer(credential_for(unique("editor"), "editor", "-"))
        error = await refused(stub.CollectGarbage(art.CollectGarbageRequest(dry_run=True), metadata=editor))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_manifest_entries_come_only_from_the_artifact_service(
    stack: LocalStack, metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    """A global admin cannot add a file entry: the method is internal, and gone from the public API."""
    ns = unique("forge")
    author = unique("pusher")
    actor = as_actor(author, role="editor", namespace=ns)
    model = await metadata.CreateModel(
        md.CreateModelRequest(parent=f"namespaces/{ns}", model_id="m"), metadata=actor
    )
    version = await metadata.CreateModelVersion(
        md.CreateModelVersionRequest(parent=model.name), metadata=actor
    )
    from modelregistry.v1 import manifest_service_pb2 as mf  # noqa: PLC0415
    from modelregistry.v1 import manifest_service_pb2_grpc  # noqa: PLC0415

    forged = model_pb2.ModelFile(path="tiny.bin", size_bytes=5, sha256="a" * 64)
    async with grpc.aio.insecure_channel(stack.addresses.metadata) as channel:
        manifests = manifest_service_pb2_grpc.ManifestServiceStub(channel)
        for who in (as_actor("alice@example.com"), bearer(stack.admin_token())):
            error = await refused(
                manifests.AddModelVersionFile(
                    mf.AddModelVersionFileRequest(model_version=version.name, file=forged), metadata=who
                )
            )
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error_metadata(error)["permission"] == "manifests.write"
            error = await refused(
                manifests.BatchAddModelVersionFiles(
                    mf.BatchAddModelVersionFilesRequest(model_version=version.name, files=[forged]),
                    metadata=who,
                )
            )
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        # The old public method is gone: nothing answers it on the MetadataService.
        error = await refused(
            channel.unary_unary(
                "/modelregistry.v1.MetadataService/AddModelVersionFile",
                request_serializer=mf.AddModelVersionFileRequest.SerializeToString,
                response_deserializer=None,
            )(
                mf.AddModelVersionFileRequest(model_version=version.name, file=forged),
                metadata=as_actor("alice@example.com"),
            )
        )
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    # Through the artifact service the entry is the verified blob, recorded as the uploader's.
    data = b"real weights"
    stored = await upload(artifacts, version.name, "model.bin", data, metadata=actor)
    assert (stored.size_bytes, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    (event,) = await events_when(metadata, 1, resource=version.name, actions=["MODEL_VERSION_FILE_ADDED"])
    assert (event.actor, event.via) == (f"user:{author}", "service:artifacts")
    assert event.authentication.startswith("token:")


async def test_listings_show_only_what_the_caller_may_see(metadata: MetadataStub) -> None:
    mine, theirs = unique("mine"), unique("theirs")
    for ns in (mine, theirs):
        await metadata.CreateModel(md.CreateModelRequest(parent=f"namespaces/{ns}", model_id="m"))
    reader = as_actor(unique("reader"), role="viewer", namespace=mine)
    names: list[str] = []
    token = ""
    while True:
        page = await metadata.ListNamespaces(
            md.ListNamespacesRequest(page_token=token, page_size=1000), metadata=reader
        )
        names += [n.name for n in page.namespaces]
        token = page.next_page_token
        if not token:
            break
    assert names == [f"namespaces/{mine}"]
    hidden = await metadata.ListModels(md.ListModelsRequest(parent=f"namespaces/{theirs}"), metadata=reader)
    assert list(hidden.models) == []
    across = await metadata.ListModelVersions(
        md.ListModelVersionsRequest(parent=f"namespaces/{theirs}/models/-"), metadata=reader
    )
    assert list(across.model_versions) == []
    await events_when(metadata, 2, namespace=f"namespaces/{theirs}")
    events = await list_all_events(metadata, namespace=f"namespaces/{theirs}")
    assert events  # they exist, for whoever may read them
    seen = await metadata.ListEvents(md.ListEventsRequest(page_size=1000), metadata=reader)
    assert {e.resource.split("/")[1] for e in seen.events} == {mine}


async def test_tokens_for_oneself_and_by_an_admin(stack: LocalStack) -> None:
    person = f"user:{unique('person')}"
    own = bearer(credential_for(person, "viewer", unique("team")))
    async with grpc.aio.insecure_channel(stack.addresses.metadata) as channel:
        access = access_service_pb2_grpc.AccessServiceStub(channel)
        me = await access.GetCallerIdentity(acc.GetCallerIdentityRequest(), metadata=own)
        assert me.principal == person
        assert me.authentication.startswith("token:")
        created = await access.CreateApiToken(
            acc.CreateApiTokenRequest(description="laptop", ttl=duration_pb2.Duration(seconds=3600)),
            metadata=own,
        )
        assert created.secret.startswith("mrt_")
        assert created.token.principal == person
        assert created.token.expire_time.seconds - created.token.create_time.seconds == 3600
        # Not for someone else (only global admins do that).
        error = await refused(
            access.CreateApiToken(
                acc.CreateApiTokenRequest(principal="user:victim@example.com"), metadata=own
            )
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        # No token for an internal service principal, whoever asks.
        admin = bearer(stack.admin_token())
        error = await refused(
            access.CreateApiToken(acc.CreateApiTokenRequest(principal="service:artifacts"), metadata=admin)
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        listed = await access.ListApiTokens(acc.ListApiTokensRequest(), metadata=own)
        assert created.token.name in [t.name for t in listed.tokens]
        assert all(t.principal == person for t in listed.tokens)
        error = await refused(access.ListApiTokens(acc.ListApiTokensRequest(principal="-"), metadata=own))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        everyone = await access.ListApiTokens(acc.ListApiTokensRequest(principal=person), metadata=admin)
        assert created.token.name in [t.name for t in everyone.tokens]

        new = bearer(created.secret)
        assert (
            await access.GetCallerIdentity(acc.GetCallerIdentityRequest(), metadata=new)
        ).principal == person
        assert created.token.last_used_time.seconds == 0
        deadline = time.monotonic() + 10  # written off the request path
        while True:
            listed = await access.ListApiTokens(acc.ListApiTokensRequest(), metadata=own)
            (used,) = [t for t in listed.tokens if t.name == created.token.name]
            if used.last_used_time.seconds or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert used.last_used_time.seconds >= created.token.create_time.seconds
        await access.RevokeApiToken(acc.RevokeApiTokenRequest(name=created.token.name), metadata=own)
        error = await refused(access.GetCallerIdentity(acc.GetCallerIdentityRequest(), metadata=new))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # at once on the replica that revoked it
        assert error_metadata(error)["problem"] == "revoked"
        active = await access.ListApiTokens(acc.ListApiTokensRequest(), metadata=own)
        assert created.token.name not in [t.name for t in active.tokens]
        every = await access.ListApiTokens(acc.ListApiTokensRequest(show_inactive=True), metadata=own)
        (gone,) = [t for t in every.tokens if t.name == created.token.name]
        assert gone.revoke_time.seconds > 0


async def test_a_revocation_reaches_another_replica_within_seconds(
    stack: LocalStack, metadata: MetadataStub, artifacts: ArtifactStub, artifact_replicas: ReplicaFactory
) -> None:
    ns = unique("revoke")
    await metadata.CreateModel(md.CreateModelRequest(parent=f"namespaces/{ns}", model_id="m"))
    person = f"user:{unique('leaver')}"
    admin = bearer(stack.admin_token())
    async with grpc.aio.insecure_channel(stack.addresses.metadata) as channel:
        access = access_service_pb2_grpc.AccessServiceStub(channel)
        await access.GrantRole(
            acc.GrantRoleRequest(parent=f"namespaces/{ns}", principal=person, role=acc.ROLE_VIEWER),
            metadata=admin,
        )
        created = await access.CreateApiToken(acc.CreateApiTokenRequest(principal=person), metadata=admin)
        replica = artifact_replicas()
        async with grpc.aio.insecure_channel(replica.address) as replica_channel:
            other = artifact_service_pb2_grpc.ArtifactServiceStub(replica_channel)
            find = art.FindMissingBlobsRequest(
                sha256s=["a" * 64], model_version=f"namespaces/{ns}/models/m/versions/1"
            )
            # The replica has seen (and cached) the token as valid; a viewer may not upload there.
            error = await refused(other.FindMissingBlobs(find, metadata=bearer(created.secret)))
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            await access.RevokeApiToken(acc.RevokeApiTokenRequest(name=created.token.name), metadata=admin)
            revoked_at = time.monotonic()
            while True:
                error = await refused(other.FindMissingBlobs(find, metadata=bearer(created.secret)))
                if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                    break
                assert time.monotonic() - revoked_at < 5, "the replica still accepts a revoked token"
                await asyncio.sleep(0.1)


async def test_bindings_change_access_and_are_in_the_trail(stack: LocalStack, metadata: MetadataStub) -> None:
    ns = unique("grants")
    await metadata.CreateModel(md.CreateModelRequest(parent=f"namespaces/{ns}", model_id="m"))
    owner, member = f"user:{unique('owner')}", f"user:{unique('member')}"
    owner_token = bearer(credential_for(owner, "admin", ns))
    member_token = bearer(credential_for(member, ""))  # no role anywhere yet
    get = md.GetModelRequest(name=f"namespaces/{ns}/models/m")
    assert (await refused(metadata.GetModel(get, metadata=member_token))).code() == grpc.StatusCode.NOT_FOUND
    async with grpc.aio.insecure_channel(stack.addresses.metadata) as channel:
        access = access_service_pb2_grpc.AccessServiceStub(channel)
        granted = await access.GrantRole(
            acc.GrantRoleRequest(parent=f"namespaces/{ns}", principal=member, role=acc.ROLE_VIEWER),
            metadata=owner_token,
        )
        assert (granted.principal, granted.role, granted.create_actor) == (member, acc.ROLE_VIEWER, owner)
        assert (await metadata.GetModel(get, metadata=member_token)).name == get.name  # at once here
        listed = await access.ListRoleBindings(
            acc.ListRoleBindingsRequest(parent=f"namespaces/{ns}"), metadata=member_token
        )
        assert {(b.principal, b.role) for b in listed.bindings} >= {
            (member, acc.ROLE_VIEWER),
            (owner, acc.ROLE_ADMIN),
        }
        # A namespace admin cannot make anyone a global admin.
        error = await refused(
            access.GrantRole(
                acc.GrantRoleRequest(parent="namespaces/-", principal=member, role=acc.ROLE_ADMIN),
                metadata=owner_token,
            )
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        error = await refused(
            access.GrantRole(
                acc.GrantRoleRequest(parent=f"namespaces/{ns}", principal="nobody", role=acc.ROLE_VIEWER),
                metadata=owner_token,
            )
        )
        assert (error.code(), error_info(error)[1]) == (grpc.StatusCode.INVALID_ARGUMENT, ["principal"])
        await access.RevokeRole(
            acc.RevokeRoleRequest(parent=f"namespaces/{ns}", principal=member, role=acc.ROLE_VIEWER),
            metadata=owner_token,
        )
        assert (
            await refused(metadata.GetModel(get, metadata=member_token))
        ).code() == grpc.StatusCode.NOT_FOUND
    events = await events_when(
        metadata, 2, namespace=f"namespaces/{ns}", actions=["ROLE_GRANTED", "ROLE_REVOKED"], actor=owner
    )
    assert [(e.action, e.resource) for e in events] == [
        ("ROLE_GRANTED", f"namespaces/{ns}/roleBindings/viewer/{member}"),
        ("ROLE_REVOKED", f"namespaces/{ns}/roleBindings/viewer/{member}"),
    ]
    assert all(e.authentication.startswith("token:") for e in events)


async def test_a_restricted_token_stays_within_its_namespaces_and_role(
    stack: LocalStack, metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    ns, other = unique("ci"), unique("prod")
    for name in (ns, other):
        await metadata.CreateModel(md.CreateModelRequest(parent=f"namespaces/{name}", model_id="m"))
    person = f"user:{unique('deployer')}"
    full = bearer(credential_for(person, "admin", "-"))
    async with grpc.aio.insecure_channel(stack.addresses.metadata) as channel:
        access = access_service_pb2_grpc.AccessServiceStub(channel)
        created = await access.CreateApiToken(
            acc.CreateApiTokenRequest(
                restriction=acc.TokenRestriction(namespaces=[ns], max_role=acc.ROLE_VIEWER)
            ),
            metadata=full,
        )
        narrow = bearer(created.secret)
        me = await access.GetCallerIdentity(acc.GetCallerIdentityRequest(), metadata=narrow)
        assert list(me.restriction.namespaces) == [ns]
        # A restricted token cannot mint a broader one.
        error = await refused(access.CreateApiToken(acc.CreateApiTokenRequest(), metadata=narrow))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (
        await metadata.GetModel(md.GetModelRequest(name=f"namespaces/{ns}/models/m"), metadata=narrow)
    ).name
    error = await refused(
        metadata.CreateModel(md.CreateModelRequest(parent=f"namespaces/{ns}", model_id="x"), metadata=narrow)
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await refused(
        metadata.GetModel(md.GetModelRequest(name=f"namespaces/{other}/models/m"), metadata=narrow)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_downloads_need_the_viewer_role_of_the_versions_namespace(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    ns = unique("pull")
    model = await metadata.CreateModel(md.CreateModelRequest(parent=f"namespaces/{ns}", model_id="m"))
    version = await metadata.CreateModelVersion(md.CreateModelVersionRequest(parent=model.name))
    await upload(artifacts, version.name, "model.bin", b"bytes")
    viewer = as_actor(unique("app"), role="viewer", namespace=ns)
    _, data = await download(artifacts, version.name, "model.bin", metadata=viewer)
    assert data == b"bytes"
    stranger = as_actor(unique("stranger"), role="viewer", namespace=unique("other"))
    error = await refused(download(artifacts, version.name, "model.bin", metadata=stranger))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await refused(upload(artifacts, version.name, "more.bin", b"x", metadata=viewer))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_bootstrap_admin_file_is_private(stack: LocalStack) -> None:
    mode = stat.S_IMODE(os.stat(stack.admin_token_file).st_mode)
    assert mode == 0o600
    assert stack.admin_token().startswith("mrt_")
    assert stat.S_IMODE(os.stat(stack.data_root).st_mode) == 0o700


async def test_token_changes_are_in_the_trail_without_their_secret(
    stack: LocalStack, access: AccessStub, metadata: MetadataStub
) -> None:
    admin = bearer(stack.admin_token())
    person = f"user:{unique('holder')}"
    created = await access.CreateApiToken(
        acc.CreateApiTokenRequest(principal=person, description="ci"), metadata=admin
    )
    await access.RevokeApiToken(acc.RevokeApiTokenRequest(name=created.token.name), metadata=admin)
    events = await events_when(metadata, 2, resource=created.token.name)  # alice: a global reader
    assert [e.action for e in events] == ["API_TOKEN_CREATED", "API_TOKEN_REVOKED"]
    assert all(e.actor == "user:admin" for e in events)
    text = str(events)
    assert created.secret.split("_")[-1] not in text
    assert "secret" not in text
    assert events[0].after["principal"] == person
    # A reader without a global role sees no token events at all.
    viewer = as_actor(unique("viewer"), role="viewer", namespace=unique("team"))
    page = await metadata.ListEvents(md.ListEventsRequest(resource=created.token.name), metadata=viewer)
    assert list(page.events) == []
