"""TLS: the services' settings, the clients' channels, and real handshakes against in-process servers.

Every round trip runs a grpc.aio server on 127.0.0.1 with a private CA from `tests.tls_certs`; a
call that cannot complete its handshake fails with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelreg import errors as sdk_errors
from modelreg.aio import AsyncClient
from modelreg.cli.app import main as cli_main
from modelreg.settings import ClientSettings, RetryPolicy
from modelreg_api import errors
from modelreg_api.addresses import ServiceAddresses
from modelreg_api.channels import ClientTls, TlsConfigError, open_channel
from modelreg_api.names import ModelVersionName
from modelreg_artifacts.config import ArtifactSettings
from modelreg_artifacts.metadata_client import MetadataClient
from modelreg_common.config import ConfigError, EnvReader
from modelreg_common.server import serve
from modelreg_common.tls import (
    ServerTls,
    is_loopback,
    peer_certificate_subject,
    read_server_tls,
    server_credentials,
)
from modelreg_local.stack import ServiceProcess, ServiceStartError, health_check_tls
from modelreg_local.stores import free_port
from modelreg_metadata.config import MetadataSettings

from tests.tls_certs import KeyPair, PrivateCa

MONGO = {"MODELREG_MONGODB_URI": "mongodb://127.0.0.1:1/"}
S3 = {"MODELREG_S3_ENDPOINT": "127.0.0.1:9000", "MODELREG_S3_ACCESS_KEY": "k", "MODELREG_S3_SECRET_KEY": "s"}


@dataclass(frozen=True)
class Pki:
    ca: PrivateCa
    server: KeyPair
    # Client certificates and the principal each names.
    workload: KeyPair  # URI SAN first, then DNS and email SANs
    person: KeyPair  # email SAN only
    host: KeyPair  # DNS SAN before an email SAN
    plain: KeyPair  # no SAN: the CN
    stranger: KeyPair  # issued by another CA


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory removed after the test (pytest's tmp_path outlives the run)."""
    with tempfile.TemporaryDirectory(prefix="modelreg-tls-") as directory:
        yield Path(directory)


@pytest.fixture(scope="module")
def pki() -> Iterator[Pki]:
    with tempfile.TemporaryDirectory(prefix="modelreg-tls-") as directory:
        root = Path(directory)
        ca = PrivateCa(root / "ca")
        yield Pki(
            ca=ca,
            server=ca.server(),
            workload=ca.client(
                "trainer",
                uri="spiffe://example.org/ns/ml/sa/trainer",
                dns="trainer.ml.svc",
                email="trainer@example.org",
            ),
            person=ca.client("alice", email="alice@example.com", common_name="Alice"),
            host=ca.client("runner", dns="runner.ci.example.com", email="ci@example.com"),
            plain=ca.client("bob", common_name="bob"),
            stranger=PrivateCa(root / "other", name="someone else's CA").client("eve", common_name="eve"),
        )


def server_tls(pki: Pki, *, mtls: bool = False) -> ServerTls:
    return ServerTls(
        pki.server.cert_file, pki.server.key_file, pki.ca.ca_file if mtls else None, require_client_cert=mtls
    )


def client_tls(pki: Pki, pair: KeyPair | None = None, *, ca: bool = True) -> ClientTls:
    return ClientTls(
        mode="on",
        ca_file=pki.ca.ca_file if ca else None,
        client_cert_file=pair.cert_file if pair else None,
        client_key_file=pair.key_file if pair else None,
    )


# Service settings


def test_plaintext_listens_on_loopback_only_unless_allowed() -> None:
    for address in ("127.0.0.1:50051", "127.1.2.3:1", "localhost:50051", "[::1]:50051"):
        read = EnvReader({})
        assert read_server_tls(read, address) is None
        assert read.problems == []
    for address in ("0.0.0.0:50051", "[::]:50051", "10.1.2.3:50051", "registry.example.com:50051"):
        read = EnvReader({})
        assert read_server_tls(read, address) is None
        [problem] = read.problems
        assert address in problem
        assert "MODELREG_TLS_CERT_FILE" in problem
        assert "MODELREG_ALLOW_PLAINTEXT=true" in problem
        allowed = EnvReader({"MODELREG_ALLOW_PLAINTEXT": "true"})
        assert read_server_tls(allowed, address) is None
        assert allowed.problems == []


def test_each_service_refuses_plaintext_off_loopback() -> None:
    with pytest.raises(ConfigError) as caught:
        MetadataSettings.from_environment({**MONGO, "MODELREG_METADATA_ADDR": "0.0.0.0:50051"})
    assert any("MODELREG_ALLOW_PLAINTEXT" in problem for problem in caught.value.problems)
    with pytest.raises(ConfigError) as caught:
        ArtifactSettings.from_environment({**MONGO, **S3, "MODELREG_ARTIFACT_ADDR": "0.0.0.0:50052"})
    assert any("MODELREG_ALLOW_PLAINTEXT" in problem for problem in caught.value.problems)
    allowed = MetadataSettings.from_environment(
        {**MONGO, "MODELREG_METADATA_ADDR": "0.0.0.0:50051", "MODELREG_ALLOW_PLAINTEXT": "1"}
    )
    assert allowed.tls is None


def test_service_settings_read_tls(pki: Pki, internal_token_file: str) -> None:
    env = {
        **MONGO,
        "MODELREG_METADATA_ADDR": "0.0.0.0:50051",  # TLS: no plaintext exception needed
        "MODELREG_TLS_CERT_FILE": str(pki.server.cert_file),
        "MODELREG_TLS_KEY_FILE": str(pki.server.key_file),
    }
    assert MetadataSettings.from_environment(env).tls == server_tls(pki)
    mtls = MetadataSettings.from_environment({**env, "MODELREG_TLS_CLIENT_CA_FILE": str(pki.ca.ca_file)})
    assert mtls.tls == server_tls(pki, mtls=True)  # a client CA means client certificates are required
    artifacts = ArtifactSettings.from_environment(
        {
            **MONGO,
            **S3,
            "MODELREG_INTERNAL_TOKEN_FILE": internal_token_file,
            "MODELREG_TLS_CERT_FILE": str(pki.server.cert_file),
            "MODELREG_TLS_KEY_FILE": str(pki.server.key_file),
            "MODELREG_METADATA_TLS": "true",
            "MODELREG_METADATA_TLS_CA_FILE": str(pki.ca.ca_file),
            "MODELREG_METADATA_TLS_CLIENT_CERT_FILE": str(pki.workload.cert_file),
            "MODELREG_METADATA_TLS_CLIENT_KEY_FILE": str(pki.workload.key_file),
        }
    )
    assert artifacts.tls == server_tls(pki)
    assert artifacts.metadata_tls == client_tls(pki, pki.workload)


def test_tls_file_problems_are_all_reported(pki: Pki, scratch: Path) -> None:
    def problems(env: dict[str, str]) -> list[str]:
        read = EnvReader(env)
        assert read_server_tls(read, "127.0.0.1:50051") is None
        return read.problems

    missing = str(scratch / "missing.pem")
    garbage = scratch / "garbage.pem"
    garbage.write_text("not a certificate\n")
    both_missing = problems({"MODELREG_TLS_CERT_FILE": missing, "MODELREG_TLS_KEY_FILE": missing})
    assert len(both_missing) == 2
    assert all("cannot read" in problem for problem in both_missing)
    [not_pem, not_key] = problems(
        {"MODELREG_TLS_CERT_FILE": str(garbage), "MODELREG_TLS_KEY_FILE": str(garbage)}
    )
    assert not_pem.startswith("MODELREG_TLS_CERT_FILE=")
    assert "not PEM certificates" in not_pem
    assert not_key.startswith("MODELREG_TLS_KEY_FILE=")
    assert "not an unencrypted PEM private key" in not_key
    [mismatch] = problems(
        {
            "MODELREG_TLS_CERT_FILE": str(pki.server.cert_file),
            "MODELREG_TLS_KEY_FILE": str(pki.plain.key_file),
        }
    )
    assert "not the key of the certificate" in mismatch
    [alone] = problems({"MODELREG_TLS_CERT_FILE": str(pki.server.cert_file)})
    assert "go together" in alone
    [bad_ca] = problems(
        {
            "MODELREG_TLS_CERT_FILE": str(pki.server.cert_file),
            "MODELREG_TLS_KEY_FILE": str(pki.server.key_file),
            "MODELREG_TLS_CLIENT_CA_FILE": missing,
        }
    )
    assert bad_ca.startswith("MODELREG_TLS_CLIENT_CA_FILE=")


def test_client_certificate_policy_problems(pki: Pki) -> None:
    tls = {
        "MODELREG_TLS_CERT_FILE": str(pki.server.cert_file),
        "MODELREG_TLS_KEY_FILE": str(pki.server.key_file),
    }
    ca = {"MODELREG_TLS_CLIENT_CA_FILE": str(pki.ca.ca_file)}
    cases = {
        # gRPC Python cannot verify an optional client certificate: say so instead of ignoring the CA.
        "gRPC Python can only require": {**tls, **ca, "MODELREG_TLS_REQUIRE_CLIENT_CERT": "false"},
        "needs MODELREG_TLS_CLIENT_CA_FILE": {**tls, "MODELREG_TLS_REQUIRE_CLIENT_CERT": "true"},
        "mTLS is TLS": ca,
    }
    for expected, env in cases.items():
        read = EnvReader(env)
        assert read_server_tls(read, "127.0.0.1:1") is None
        assert any(expected in problem for problem in read.problems), (expected, read.problems)
    read = EnvReader({**tls, **ca, "MODELREG_TLS_REQUIRE_CLIENT_CERT": "true"})
    assert read_server_tls(read, "127.0.0.1:1") == server_tls(pki, mtls=True)
    with pytest.raises(ValueError, match="exactly when"):
        ServerTls(pki.server.cert_file, pki.server.key_file, pki.ca.ca_file, require_client_cert=False)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.255.0.9:1", True),
        ("[::1]:50051", True),
        ("::1", True),
        ("localhost:50051", True),
        ("LocalHost:1", True),
        ("dns:///localhost:50051", True),
        ("ipv4:127.0.0.1:1,127.0.0.2:2", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        (":50051", False),
        ("10.0.0.1:50051", False),
        ("128.0.0.1:1", False),
        ("registry.example.com:443", False),
        ("localhost.example.com:443", False),
        ("dns:///registry.example.com:443", False),
        ("ipv4:127.0.0.1:1,10.0.0.1:2", False),
        ("", False),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


# Client settings


def test_client_tls_from_environment(pki: Pki, scratch: Path, internal_token_file: str) -> None:
    assert ClientTls.from_environment({}) == ClientTls(mode="auto")
    assert ClientTls.from_environment({"MODELREG_TLS": "TRUE"}).mode == "on"
    assert ClientTls.from_environment({"MODELREG_TLS": "false"}).mode == "off"
    full = ClientTls.from_environment(
        {
            "MODELREG_TLS_CA_FILE": str(pki.ca.ca_file),
            "MODELREG_TLS_CLIENT_CERT_FILE": str(pki.plain.cert_file),
            "MODELREG_TLS_CLIENT_KEY_FILE": str(pki.plain.key_file),
        }
    )
    assert full == ClientTls("auto", pki.ca.ca_file, pki.plain.cert_file, pki.plain.key_file)
    assert ClientSettings.from_environment({"MODELREG_TLS": "on"}).tls.mode == "on"
    with pytest.raises(TlsConfigError) as caught:
        ClientTls.from_environment(
            {
                "MODELREG_TLS": "maybe",
                "MODELREG_TLS_CA_FILE": str(scratch / "missing.pem"),
                "MODELREG_TLS_CLIENT_CERT_FILE": str(pki.plain.cert_file),
            }
        )
    maybe, missing, half = caught.value.problems
    assert "MODELREG_TLS='maybe'" in maybe
    assert missing.startswith("MODELREG_TLS_CA_FILE: cannot read")
    assert "missing.pem" in missing
    assert "go together" in half
    with pytest.raises(TlsConfigError, match=r"MODELREG_METADATA_TLS_CLIENT_KEY_FILE: .* no PEM private key"):
        ClientTls.from_environment(
            {
                "MODELREG_METADATA_TLS_CLIENT_CERT_FILE": str(pki.plain.cert_file),
                "MODELREG_METADATA_TLS_CLIENT_KEY_FILE": str(pki.plain.cert_file),  # the certificate again
            },
            prefix="MODELREG_METADATA_TLS",
        )
    with pytest.raises(ConfigError) as service:
        ArtifactSettings.from_environment(
            {
                **MONGO,
                **S3,
                "MODELREG_INTERNAL_TOKEN_FILE": internal_token_file,
                "MODELREG_METADATA_TLS": "sometimes",
            }
        )
    assert service.value.problems == ["MODELREG_METADATA_TLS='sometimes' is not one of auto, true, false"]


def test_auto_tls_is_off_for_loopback_addresses_only() -> None:
    auto, on, off = ClientTls("auto"), ClientTls("on"), ClientTls("off")
    assert not auto.enabled_for("127.0.0.1:50051")
    assert not auto.enabled_for("localhost:50051")
    assert auto.enabled_for("registry.example.com:443")
    assert auto.enabled_for("0.0.0.0:50051")
    assert on.enabled_for("127.0.0.1:50051")
    assert not off.enabled_for("registry.example.com:443")


async def test_an_unreadable_file_is_named_when_the_channel_opens(scratch: Path) -> None:
    gone = scratch / "ca.pem"
    with pytest.raises(TlsConfigError, match=f"cannot read {gone}"):
        open_channel("127.0.0.1:1", ClientTls("on", ca_file=gone))
    # Plaintext never reads the files.
    await open_channel("127.0.0.1:1", ClientTls("auto", ca_file=gone)).close(None)


# Handshakes


class PeerRecorder:
    """The standard health Check, always SERVING, noting whom each caller's certificate names."""

    def __init__(self) -> None:
        self.peers: list[str | None] = []

    async def check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        self.peers.append(peer_certificate_subject(context.auth_context()))
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        check: Any = grpc.unary_unary_rpc_method_handler(
            self.check,
            request_deserializer=health_pb2.HealthCheckRequest.FromString,
            response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": check})


@contextlib.asynccontextmanager
async def tls_server(tls: ServerTls) -> AsyncIterator[tuple[str, PeerRecorder]]:
    recorder = PeerRecorder()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((recorder.handler(),))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(tls))
    await server.start()
    try:
        yield f"127.0.0.1:{port}", recorder
    finally:
        await server.stop(None)


async def health_check(address: str, tls: ClientTls) -> grpc.StatusCode:
    async with open_channel(address, tls) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


async def test_tls_round_trip(pki: Pki) -> None:
    async with tls_server(server_tls(pki)) as (address, recorder):
        assert await health_check(address, client_tls(pki)) is grpc.StatusCode.OK
        port = address.rpartition(":")[2]
        assert await health_check(f"localhost:{port}", client_tls(pki)) is grpc.StatusCode.OK  # DNS SAN
        # The server's CA is not among the system's roots.
        assert await health_check(address, client_tls(pki, ca=False)) is grpc.StatusCode.UNAVAILABLE
        assert await health_check(address, ClientTls("off")) is grpc.StatusCode.UNAVAILABLE
        # auto is plaintext on loopback: a local TLS service needs MODELREG_TLS=true.
        assert await health_check(address, ClientTls("auto", pki.ca.ca_file)) is grpc.StatusCode.UNAVAILABLE
        # Without a client CA the server asks for no certificate, so a call names no peer.
        assert await health_check(address, client_tls(pki, pki.plain)) is grpc.StatusCode.OK
        assert recorder.peers == [None, None, None]


async def test_mtls_requires_a_certificate_from_the_client_ca(pki: Pki) -> None:
    async with tls_server(server_tls(pki, mtls=True)) as (address, recorder):
        assert await health_check(address, client_tls(pki)) is grpc.StatusCode.UNAVAILABLE
        assert await health_check(address, client_tls(pki, pki.stranger)) is grpc.StatusCode.UNAVAILABLE
        assert recorder.peers == []
        for pair in (pki.workload, pki.person, pki.host, pki.plain):
            assert await health_check(address, client_tls(pki, pair)) is grpc.StatusCode.OK
        assert recorder.peers == [
            "spiffe://example.org/ns/ml/sa/trainer",  # the first SAN
            "alice@example.com",  # a SAN before the CN
            "runner.ci.example.com",
            "bob",  # no SAN: the CN
        ]


def test_peer_certificate_subject_needs_a_tls_peer_certificate() -> None:
    cert = {"transport_security_type": [b"ssl"], "x509_pem_cert": [b"-----BEGIN CERTIFICATE-----..."]}
    assert peer_certificate_subject({"transport_security_type": [b"insecure"]}) is None
    assert peer_certificate_subject({"transport_security_type": [b"ssl"], "x509_common_name": [b"x"]}) is None
    # A name without the transport saying TLS (e.g. another credentials type) counts for nothing.
    assert peer_certificate_subject({"x509_pem_cert": [b"pem"], "x509_common_name": [b"x"]}) is None
    # IP address SANs are skipped; with nothing else the CN names the peer.
    ip_first = {
        **cert,
        "x509_subject_alternative_name": [b"10.0.0.7", b"worker.example.com"],
        "peer_ip": [b"10.0.0.7"],
        "peer_dns": [b"worker.example.com"],
        "x509_common_name": [b"worker"],
    }
    assert peer_certificate_subject(ip_first) == "worker.example.com"
    only_ip = {**ip_first, "x509_subject_alternative_name": [b"10.0.0.7"], "peer_dns": []}
    assert peer_certificate_subject(only_ip) == "worker"
    assert peer_certificate_subject({**cert, "x509_common_name": [b""]}) is None


async def test_clients_use_their_tls_settings(pki: Pki) -> None:
    """The SDK's channels and the artifact service's metadata client over TLS: a call reaches the
    server (UNIMPLEMENTED: the tiny server has only Check) or, without the CA, does not."""
    async with tls_server(server_tls(pki)) as (address, _):

        async def sdk_call(tls: ClientTls) -> None:
            settings = ClientSettings(
                addresses=ServiceAddresses(address, address), tls=tls, retry=RetryPolicy(attempts=1)
            )
            async with AsyncClient(settings=settings) as client:
                await client.get_namespace("team")

        with pytest.raises(sdk_errors.Unimplemented):
            await sdk_call(client_tls(pki))
        with pytest.raises(sdk_errors.Unavailable):
            await sdk_call(ClientTls("off"))

        version = ModelVersionName("team", "model", 1)
        metadata = MetadataClient(address, client_tls(pki), "x" * 43)
        try:
            with pytest.raises(errors.RegistryError) as reached:
                await metadata.get_version(version)
            assert not isinstance(reached.value, errors.Unavailable)
        finally:
            await metadata.close()
        metadata = MetadataClient(address, client_tls(pki, ca=False), "x" * 43)
        try:
            with pytest.raises(errors.Unavailable):
                await metadata.get_version(version)
        finally:
            await metadata.close()


def test_cli_tls_options_reach_the_channel(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gone = scratch / "ca.pem"
    sigterm = signal.getsignal(signal.SIGTERM)  # main() installs its own handler
    try:
        assert cli_main(["--tls", "--ca-file", str(gone), "namespaces", "list"]) == 1
        assert f"cannot read {gone}" in capsys.readouterr().err
        assert cli_main(["namespaces", "list", "--tls", "--ca-file", str(gone)]) == 1
        assert f"cannot read {gone}" in capsys.readouterr().err
    finally:
        signal.signal(signal.SIGTERM, sigterm)


async def test_serve_with_tls_and_the_stack_health_wait(pki: Pki, scratch: Path) -> None:
    """`serve(tls=...)` listens with TLS, and the local stack's health wait (TLS derived from
    the service's environment, as `make run` would pass it) sees it SERVING."""
    env = {
        "MODELREG_TLS_CERT_FILE": str(pki.server.cert_file),
        "MODELREG_TLS_KEY_FILE": str(pki.server.key_file),
        "MODELREG_TLS_CLIENT_CA_FILE": str(pki.ca.ca_file),
        "MODELREG_TLS_CA_FILE": str(pki.ca.ca_file),
        "MODELREG_TLS_CLIENT_CERT_FILE": str(pki.plain.cert_file),
        "MODELREG_TLS_CLIENT_KEY_FILE": str(pki.plain.key_file),
    }
    address = f"127.0.0.1:{free_port()}"
    read = EnvReader(env)
    tls = read_server_tls(read, address)
    read.finish()
    assert tls == server_tls(pki, mtls=True)
    assert health_check_tls(env) == ClientTls("on", pki.ca.ca_file, pki.plain.cert_file, pki.plain.key_file)
    assert health_check_tls({}).mode == "off"

    def process(env: dict[str, str]) -> ServiceProcess:
        return ServiceProcess("tls", module="-", service="", address=address, env=env, log_dir=scratch)

    stop = asyncio.Event()
    serving = asyncio.create_task(serve(address, [], grace_seconds=0, stop=stop, tls=tls))
    try:
        await asyncio.to_thread(process(env).wait_healthy, 20)
        without_cert = {
            key: value for key, value in env.items() if not key.startswith("MODELREG_TLS_CLIENT_")
        }
        with pytest.raises(ServiceStartError, match="not healthy"):
            await asyncio.to_thread(process(without_cert).wait_healthy, 1)
        assert await health_check(address, client_tls(pki, pki.plain)) is grpc.StatusCode.OK
    finally:
        stop.set()
        await serving
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):  # serve() installed handlers for its process
            loop.remove_signal_handler(signum)
