"""The artifact service through gRPC against SeaweedFS: verified uploads, downloads, bad input."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import google_crc32c
import grpc
import pytest
from minio.error import S3Error
from modelreg_artifacts.blobstore import S3BlobStore, object_key
from modelreg_common.config import S3Settings
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import artifact_service_pb2_grpc, model_pb2
from modelregistry.v1 import manifest_service_pb2 as mf
from modelregistry.v1 import metadata_service_pb2 as md

from tests.support import (
    ACTOR,
    authenticated_channel,
    download,
    error_info,
    new_version,
    upload,
    upload_messages,
)

if TYPE_CHECKING:
    from modelreg_local.stack import LocalStack

    from tests.conftest import ReplicaFactory
    from tests.support import ArtifactStub, ManifestStub, MetadataStub

pytestmark = pytest.mark.integration


MIB = 1024 * 1024


async def files_of(metadata: MetadataStub, version: str) -> dict[str, tuple[int, str]]:
    fetched = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version))
    return {f.path: (f.size_bytes, f.sha256) for f in fetched.files}


@pytest.mark.parametrize("size", [0, 1, 300 * 1024, 21 * MIB + 3])
async def test_upload_then_download_round_trips(
    metadata: MetadataStub, artifacts: ArtifactStub, size: int
) -> None:
    version = await new_version(metadata)
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()

    stored = await upload(artifacts, version.name, "weights/model.bin", data)
    assert (stored.path, stored.size_bytes, stored.sha256) == ("weights/model.bin", size, digest)
    assert await files_of(metadata, version.name) == {"weights/model.bin": (size, digest)}

    header, received = await download(artifacts, version.name, "weights/model.bin")
    assert (header.size_bytes, header.sha256) == (size, digest)
    assert received == data


async def test_manifest_digest_covers_every_file(metadata: MetadataStub, artifacts: ArtifactStub) -> None:
    version = await new_version(metadata)
    empty = (await metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name))).manifest_digest
    await upload(artifacts, version.name, "b.txt", b"bee")
    await upload(artifacts, version.name, "a.txt", b"ay")
    fetched = await metadata.GetModelVersion(md.GetModelVersionRequest(name=version.name))
    assert [f.path for f in fetched.files] == ["a.txt", "b.txt"]
    lines = "".join(f"{f.path}\t{f.size_bytes}\t{f.sha256}\n" for f in fetched.files)
    assert fetched.manifest_digest == hashlib.sha256(lines.encode()).hexdigest() != empty


async def test_range_reads(metadata: MetadataStub, artifacts: ArtifactStub) -> None:
    version = await new_version(metadata)
    data = os.urandom(3 * MIB + 17)
    await upload(artifacts, version.name, "model.bin", data)
    for offset, limit in [(0, 10), (MIB - 1, 2), (3 * MIB, 0), (len(data), 0), (5, len(data) * 2)]:
        header, received = await download(artifacts, version.name, "model.bin", offset, limit)
        expected = data[offset:] if limit == 0 else data[offset : offset + limit]
        assert received == expected, (offset, limit)
        assert header.size_bytes == len(data)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(artifacts, version.name, "model.bin", len(data) + 1)
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(artifacts, version.name, "model.bin", -1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[1] == ["offset"]


async def test_wrong_digest_is_rejected_and_nothing_is_recorded(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    for size in (1000, 17 * MIB):  # a single PUT and a multipart upload
        data = os.urandom(size)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await upload(artifacts, version.name, "model.bin", data, sha256="0" * 64)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value) == ("DIGEST_MISMATCH", ["spec.sha256"])
        assert hashlib.sha256(data).hexdigest() in (caught.value.details() or "")
    assert await files_of(metadata, version.name) == {}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(artifacts, version.name, "model.bin")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_size_mismatch_and_early_end_are_rejected(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    data = os.urandom(4096)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(artifacts, version.name, "short.bin", data, size=len(data) + 10)
    assert error_info(caught.value) == ("SIZE_MISMATCH", ["spec.size_bytes"])

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(artifacts, version.name, "long.bin", data, size=len(data) - 10)
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE

    spec = art.UploadSpec(
        model_version=version.name,
        path="unfinished.bin",
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await artifacts.UploadFile(upload_messages(spec, data, finish=False))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[1] == ["finish_write"]
    assert await files_of(metadata, version.name) == {}


async def test_wrong_write_offset_is_rejected(metadata: MetadataStub, artifacts: ArtifactStub) -> None:
    version = await new_version(metadata)
    data = os.urandom(2000)

    async def skipping() -> AsyncIterator[art.UploadFileRequest]:
        yield art.UploadFileRequest(
            spec=art.UploadSpec(
                model_version=version.name,
                path="m.bin",
                size_bytes=2000,
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
        yield art.UploadFileRequest(write_offset=0, data=data[:1000])
        yield art.UploadFileRequest(write_offset=1500, data=data[1000:])

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await artifacts.UploadFile(skipping())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[1] == ["write_offset"]
    assert "1000" in (caught.value.details() or "")


@pytest.mark.parametrize(
    "path",
    ["../escape.bin", "a/../../b", "/abs/path", "a//b", "a\\b", "./a", "a/\x00b", "x" * 1025, ""],
)
async def test_bad_paths_are_invalid_argument(
    metadata: MetadataStub, artifacts: ArtifactStub, path: str
) -> None:
    version = await new_version(metadata)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(artifacts, version.name, path, b"data")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value)[1] == ["spec.path"]


async def test_bad_specs(metadata: MetadataStub, artifacts: ArtifactStub) -> None:
    version = await new_version(metadata)
    cases = [
        (art.UploadSpec(model_version=version.name, path="a", size_bytes=1, sha256="XYZ"), "spec.sha256"),
        (
            art.UploadSpec(model_version=version.name, path="a", size_bytes=-1, sha256="0" * 64),
            "spec.size_bytes",
        ),
        (
            art.UploadSpec(model_version="namespaces/x", path="a", size_bytes=1, sha256="0" * 64),
            "spec.model_version",
        ),
    ]
    for spec, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await artifacts.UploadFile(upload_messages(spec, b"x"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value)[1] == [field]

    async def no_spec() -> AsyncIterator[art.UploadFileRequest]:
        yield art.UploadFileRequest(write_offset=0, data=b"x", finish_write=True)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await artifacts.UploadFile(no_spec())
    assert error_info(caught.value)[1] == ["spec"]


async def test_upload_to_unknown_version_is_not_found(artifacts: ArtifactStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(artifacts, "namespaces/team-a/models/ghost/versions/1", "a.bin", b"boo")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_download_by_alias_and_missing_file(metadata: MetadataStub, artifacts: ArtifactStub) -> None:
    version = await new_version(metadata)
    await upload(artifacts, version.name, "model.onnx", b"onnx bytes")
    model_name = version.name.rsplit("/versions/", 1)[0]
    await metadata.SetAlias(
        md.SetAliasRequest(name=f"{model_name}/aliases/staging", model_version=version.name), metadata=ACTOR
    )
    _, received = await download(artifacts, f"{model_name}/aliases/staging", "model.onnx")
    assert received == b"onnx bytes"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(artifacts, version.name, "other.onnx")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(artifacts, f"{model_name}/aliases/missing", "model.onnx")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_sealed_version_refuses_uploads_and_keeps_its_manifest(
    metadata: MetadataStub, manifests: ManifestStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    await upload(artifacts, version.name, "model.bin", b"v1 weights")
    sealed = await metadata.SealModelVersion(md.SealModelVersionRequest(name=version.name), metadata=ACTOR)
    assert sealed.state == model_pb2.MODEL_VERSION_STATE_READY
    assert (
        await metadata.SealModelVersion(md.SealModelVersionRequest(name=version.name))
    ).etag == sealed.etag

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(artifacts, version.name, "extra.bin", b"late")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(caught.value)[0] == "VERSION_SEALED"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await manifests.AddModelVersionFile(
            mf.AddModelVersionFileRequest(
                model_version=version.name, file=model_pb2.ModelFile(path="x", size_bytes=1, sha256="0" * 64)
            )
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await files_of(metadata, version.name) == {
        "model.bin": (10, hashlib.sha256(b"v1 weights").hexdigest())
    }

    other = await new_version(metadata)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await metadata.SealModelVersion(md.SealModelVersionRequest(name=other.name, etag="stale"))
    assert caught.value.code() == grpc.StatusCode.ABORTED


async def test_parallel_uploads_into_one_version_lose_no_file(
    metadata: MetadataStub, artifacts: ArtifactStub
) -> None:
    version = await new_version(metadata)
    contents = {f"shard-{i:02d}.bin": os.urandom(1000 + i) for i in range(12)}
    await asyncio.gather(*(upload(artifacts, version.name, path, data) for path, data in contents.items()))
    expected = {path: (len(data), hashlib.sha256(data).hexdigest()) for path, data in contents.items()}
    assert await files_of(metadata, version.name) == expected


@pytest.mark.parametrize("checksum", ["crc32c", "sha256"])
async def test_uploads_round_trip_with_either_payload_checksum(
    metadata: MetadataStub, artifact_replicas: ReplicaFactory, checksum: str
) -> None:
    """Parts and small objects reach S3 with a CRC32C (the default) or the SDK's payload SHA-256;
    messages of 700 KiB straddle the 5 MiB part boundaries, so a part's CRC32C is built from
    pieces of messages."""
    replica = artifact_replicas(MODELREG_S3_PART_MIB="5", MODELREG_S3_PAYLOAD_CHECKSUM=checksum)
    version = await new_version(metadata)
    files = {"big.bin": os.urandom(12 * MIB + 5), "small.bin": os.urandom(3000), "empty.bin": b""}
    async with authenticated_channel(replica.address) as channel:
        stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        for path, data in files.items():
            spec = art.UploadSpec(
                model_version=version.name,
                path=path,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
            await stub.UploadFile(upload_messages(spec, data, chunk=700 * 1024), metadata=ACTOR)
        for path, data in files.items():
            assert (await download(stub, version.name, path))[1] == data


async def test_object_storage_refuses_bytes_whose_crc32c_does_not_match(stack: LocalStack) -> None:
    """What makes the CRC32C worth sending: the S3 server checks it and stores nothing else."""
    assert stack.stores is not None
    s3 = stack.stores.s3
    settings = S3Settings(
        s3.endpoint,
        s3.access_key,
        s3.secret_key,
        s3.secure,
        s3.region,
        os.environ.get("MODELREG_S3_BUCKET", "modelreg"),
    )
    store = S3BlobStore(settings, threads=2)
    data = os.urandom(6 * MIB)
    key = object_key(uuid.uuid4().hex)
    try:
        with pytest.raises(S3Error) as caught:
            await store.put(key, data, "application/octet-stream", crc32c=google_crc32c.value(data) ^ 1)
        assert caught.value.code == "BadDigest"
        assert await store.size_of(key) is None
        multipart = await store.start_multipart(key, "application/octet-stream")
        with pytest.raises(S3Error) as caught:
            await store.upload_part(key, multipart, 1, bytearray(data), crc32c=google_crc32c.value(data) ^ 1)
        assert caught.value.code == "BadDigest"
        etag = await store.upload_part(key, multipart, 1, bytearray(data), crc32c=google_crc32c.value(data))
        assert await store.complete_multipart(key, multipart, [(1, etag)])
        assert await store.digest_of(key) == (len(data), hashlib.sha256(data).hexdigest())
    finally:
        await store.delete(key)
        store.close()
