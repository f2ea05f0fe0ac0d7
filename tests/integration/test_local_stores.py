"""The local stores run for real (docs/local-stack.md): they keep their data across restarts, and they
refuse whoever should not reach them.

FerretDB and its write-lock proxy listen on Unix sockets only this user can open; SeaweedFS serves S3 to
holders of the access key and refuses everything else it can: the filer's and the master's HTTP APIs,
needle reads on the volume server, and gRPC without the stack's client certificate. How the servers are
started is checked without them, in tests/unit/test_local_store_access.py.
"""

from __future__ import annotations

import io
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from minio import Minio
from minio.datatypes import Part
from minio.error import S3Error
from modelreg_local.stores import (
    DEFAULT_S3_ACCESS_KEY,
    DEFAULT_S3_SECRET_KEY,
    FerretDBServer,
    LocalStores,
    SeaweedS3Server,
    StoreEndpoints,
    default_ferretdb_binary,
    parse_environment,
)
from pymongo import AsyncMongoClient, MongoClient

from tests.conftest import IN_CI

MIB = 1024 * 1024


def _require_ferretdb() -> None:
    if not default_ferretdb_binary().exists():
        missing = "modelreg-ferretdb is not built: run `make tools` (deploy/local/build-ferretdb.sh)"
        if IN_CI:  # CI installs everything it tests: a missing binary is a failure there
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)


# --------------------------------------------------------------------------------------------------
# Data kept across restarts
# --------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_local_stores_serve_and_keep_data_across_restarts(tmp_path: Path) -> None:
    _require_ferretdb()
    payload = b"model weights" * 1000

    with LocalStores(tmp_path) as stores:
        endpoints = stores.endpoints
        assert endpoints.s3_access_key == DEFAULT_S3_ACCESS_KEY
        with MongoClient[dict[str, Any]](endpoints.mongodb_uri) as client:
            client.registry.models.insert_one({"_id": "m1", "name": "resnet"})
            assert client.registry.models.find_one({"_id": "m1"}) == {"_id": "m1", "name": "resnet"}
        s3 = _minio(endpoints)
        s3.make_bucket("artifacts")
        s3.put_object("artifacts", "m1/weights.bin", io.BytesIO(payload), len(payload))
        assert _read(s3, "artifacts", "m1/weights.bin") == payload

    assert stores.ferretdb is not None
    assert not stores.ferretdb.running()
    assert (tmp_path / "ferretdb").is_dir()
    assert (tmp_path / "seaweedfs").is_dir()

    with LocalStores(tmp_path) as stores:
        endpoints = stores.endpoints
        with MongoClient[dict[str, Any]](endpoints.mongodb_uri) as client:
            assert client.registry.models.find_one({"_id": "m1"}) == {"_id": "m1", "name": "resnet"}
        assert _read(_minio(endpoints), "artifacts", "m1/weights.bin") == payload


# --------------------------------------------------------------------------------------------------
# Who can reach them (docs/local-stack.md, "What the local stores allow")
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStores]:
    _require_ferretdb()
    with LocalStores(tmp_path_factory.mktemp("access")) as local:
        yield local


def _ferretdb(stores: LocalStores) -> FerretDBServer:
    assert stores.ferretdb is not None
    return stores.ferretdb


def _seaweedfs(stores: LocalStores) -> SeaweedS3Server:
    assert stores.seaweedfs is not None
    return stores.seaweedfs


def _listening_sockets(pid: int) -> tuple[set[str], set[str]]:
    """The TCP addresses (hex ip:port, as /proc shows them) and Unix paths a process listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    tcp = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                tcp.add(fields[1])
    unix = set()
    for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes and fields[5] == "01":  # 01: listening
            unix.add(fields[7])
    return tcp, unix


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/net/unix").exists(), reason="reads /proc (Linux)")
def test_ferretdb_listens_on_no_tcp_port(stores: LocalStores) -> None:
    ferretdb = _ferretdb(stores)
    assert ferretdb.pid is not None
    tcp, unix = _listening_sockets(ferretdb.pid)
    assert tcp == set()
    assert unix == {str(ferretdb.socket_path), str(ferretdb.backend_socket_path)}


@pytest.mark.integration
def test_ferretdb_sockets_are_this_users_alone(stores: LocalStores) -> None:
    ferretdb = _ferretdb(stores)
    assert ferretdb.socket_path is not None
    for path in (ferretdb.socket_path, ferretdb.backend_socket_path):
        info = path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert info.st_uid == os.geteuid()
        assert stat.S_IMODE(info.st_mode) & 0o077 == 0, f"{path} is open to others"
        directory = path.parent.stat()
        # Connecting needs search permission on the directory: nobody else has it.
        assert directory.st_uid == os.geteuid()
        assert stat.S_IMODE(directory.st_mode) == 0o700


@pytest.mark.integration
async def test_the_proxy_serves_the_services_clients(stores: LocalStores) -> None:
    # What the services get: MODELREG_MONGODB_URI through the environment, then AsyncMongoClient(tz_aware).
    env = stores.endpoints.to_environment()
    uri = parse_environment(env).mongodb_uri
    assert uri is not None
    assert uri == _ferretdb(stores).uri
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=5000, appname="access-test"
    )
    try:
        database = client["access_test"]
        moment = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
        await database.things.insert_one({"_id": "a", "at": moment})
        updated = await database.things.find_one_and_update(
            {"_id": "a"}, {"$inc": {"n": 1}}, upsert=True, return_document=True
        )
        assert updated is not None
        assert updated["n"] == 1
        assert updated["at"] == moment
        assert updated["at"].tzinfo is not None
        await client.drop_database("access_test")
    finally:
        await client.close()
    with MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=5000) as sync_client:
        assert sync_client.admin.command("ping")["ok"] == 1


def _minio(endpoints: StoreEndpoints) -> Minio:
    s3 = endpoints.s3
    return Minio(
        s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=s3.secure, region=s3.region
    )


@pytest.fixture
def stored_object(stores: LocalStores) -> Iterator[tuple[str, str, bytes]]:
    """An object put through S3 with the access key: (bucket, key, content)."""
    s3 = _minio(stores.endpoints)
    bucket, key, payload = "access-test", "models/m1/weights.bin", b"private weights " * 64
    if not s3.bucket_exists(bucket):
        s3.make_bucket(bucket)
    s3.put_object(bucket, key, io.BytesIO(payload), len(payload))
    yield bucket, key, payload
    for item in s3.list_objects(bucket, recursive=True):
        assert item.object_name is not None
        s3.remove_object(bucket, item.object_name)
    s3.remove_bucket(bucket)


def _http(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http://127.0.0.1 only
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _read(s3: Minio, bucket: str, key: str, offset: int = 0, length: int = 0) -> bytes:
    response = s3.get_object(bucket, key, offset, length)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


@pytest.mark.integration
def test_the_filer_serves_no_object_without_credentials(
    stores: LocalStores, stored_object: tuple[str, str, bytes]
) -> None:
    bucket, key, payload = stored_object
    filer = f"http://127.0.0.1:{_seaweedfs(stores).ports['filer']}"
    status, body = _http("GET", f"{filer}/buckets/{bucket}/{key}")
    assert status >= 400
    assert payload not in body
    assert _http("GET", f"{filer}/buckets/")[0] >= 400  # no listing either
    assert _http("PUT", f"{filer}/buckets/{bucket}/{key}", b"overwritten")[0] >= 400
    assert _http("DELETE", f"{filer}/buckets/{bucket}/{key}")[0] >= 400
    assert _read(_minio(stores.endpoints), bucket, key) == payload


@pytest.mark.integration
def test_the_master_api_refuses_to_delete_a_bucket_or_write(
    stores: LocalStores, stored_object: tuple[str, str, bytes]
) -> None:
    bucket, key, payload = stored_object
    master = f"http://127.0.0.1:{_seaweedfs(stores).ports['master']}"
    for path in (f"/col/delete?collection={bucket}", "/dir/assign", "/vol/grow?count=1", "/dir/status"):
        assert _http("GET", master + path)[0] >= 400, path
    assert _http("POST", f"{master}/submit", b"x")[0] >= 400
    assert _read(_minio(stores.endpoints), bucket, key) == payload


def _filer_lookup(channel: grpc.Channel, directory: str, name: str) -> Any:
    """LookupDirectoryEntry on the filer, its messages built from the server's reflection."""
    pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    method = pool.FindMethodByName("filer_pb.SeaweedFiler.LookupDirectoryEntry")
    request_type = GetMessageClass(method.input_type)
    response_type = GetMessageClass(method.output_type)
    call = channel.unary_unary(
        "/filer_pb.SeaweedFiler/LookupDirectoryEntry",
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )
    return call(request_type(directory=directory, name=name), timeout=10).entry


@pytest.mark.integration
def test_grpc_wants_the_stacks_certificate_and_needles_want_a_token(
    stores: LocalStores, stored_object: tuple[str, str, bytes]
) -> None:
    bucket, key, payload = stored_object
    weed = _seaweedfs(stores)
    certificate = weed.grpc_certificate.read_bytes()
    filer_grpc = f"127.0.0.1:{weed.ports['filer.grpc']}"
    directory, name = f"/buckets/{bucket}/{key}".rsplit("/", 1)

    strangers = {
        "plaintext": grpc.insecure_channel(filer_grpc),
        "TLS without a client certificate": grpc.secure_channel(
            filer_grpc, grpc.ssl_channel_credentials(root_certificates=certificate)
        ),
    }
    for what, channel in strangers.items():
        with channel, pytest.raises(grpc.RpcError) as refused:
            # Any method: the connection fails before one is chosen. An empty request is a valid message.
            channel.unary_unary(
                "/filer_pb.SeaweedFiler/LookupDirectoryEntry",
                request_serializer=None,
                response_deserializer=None,
            )(b"", timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, what

    # With the certificate (what weed's own components hold), the same call works: the port is right.
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certificate, private_key=weed.grpc_key.read_bytes(), certificate_chain=certificate
    )
    with grpc.secure_channel(filer_grpc, credentials) as channel:
        entry = _filer_lookup(channel, directory, name)
    file_id = entry.chunks[0].file_id
    assert file_id

    volume = f"http://127.0.0.1:{weed.ports['volume']}"
    status, body = _http("GET", f"{volume}/{file_id}")
    assert status == 401
    assert payload not in body
    assert _http("DELETE", f"{volume}/{file_id}")[0] == 401
    assert _read(_minio(stores.endpoints), bucket, key) == payload


@pytest.mark.integration
def test_s3_still_serves_what_the_artifact_service_needs(stores: LocalStores) -> None:
    s3 = _minio(stores.endpoints)
    bucket, key = "access-multipart", "blobs/big.bin"
    s3.make_bucket(bucket)
    try:
        parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(MIB + 17)]
        whole = b"".join(parts)
        # The low-level multipart calls services/artifacts/modelreg_artifacts/blobstore.py makes.
        upload_id = s3._create_multipart_upload(bucket, key, {})
        listed = s3._list_multipart_uploads(bucket, prefix="blobs/")
        assert [upload.upload_id for upload in listed.uploads] == [upload_id]
        done = [
            Part(number, s3._upload_part(bucket, key, data, None, upload_id, number))
            for number, data in enumerate(parts, 1)
        ]
        s3._complete_multipart_upload(bucket, key, upload_id, done)
        assert s3.stat_object(bucket, key).size == len(whole)
        assert _read(s3, bucket, key) == whole
        for offset, length in ((0, 10), (4 * MIB - 5, 10), (5 * MIB - 3, 7), (len(whole) - 20, 20)):
            assert _read(s3, bucket, key, offset, length) == whole[offset : offset + length]
        assert [item.object_name for item in s3.list_objects(bucket, prefix="blobs/", recursive=True)] == [
            key
        ]
        s3.remove_object(bucket, key)
        with pytest.raises(S3Error) as gone:
            s3.stat_object(bucket, key)
        assert gone.value.code == "NoSuchKey"
        # The secret published in the source opens nothing.
        endpoint = stores.endpoints.s3
        published = Minio(
            endpoint.endpoint,
            endpoint.access_key,
            DEFAULT_S3_SECRET_KEY,
            secure=False,
            region=endpoint.region,
        )
        with pytest.raises(S3Error) as refused:
            published.list_buckets()
        assert refused.value.code == "SignatureDoesNotMatch"
    finally:
        for item in s3.list_objects(bucket, recursive=True):
            assert item.object_name is not None
            s3.remove_object(bucket, item.object_name)
        s3.remove_bucket(bucket)
