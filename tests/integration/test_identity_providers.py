"""Signing in without API tokens: OIDC / Kubernetes service-account JWTs and client certificates.

Each test runs a metadata process of its own (tests/integration/isolated.py) configured with an
identity provider; the keys, the JWKS (a file, or served over HTTP on loopback) and the
certificates are made by the test.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from modelreg_local.stack import LocalStack
from modelregistry.v1 import access_service_pb2 as acc
from modelregistry.v1 import access_service_pb2_grpc, metadata_service_pb2_grpc
from modelregistry.v1 import metadata_service_pb2 as md

from tests.identity_keys import JwksServer, SigningKey, claims, sign, write_jwks
from tests.integration.isolated import Isolated
from tests.support import bearer, default_credential, error_metadata, events_when, unique
from tests.tls_certs import PrivateCa

pytestmark = pytest.mark.integration

IDP = "https://idp.example.test"
CLUSTER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "modelreg"


def issuers_file(directory: Path, jwks_url: str, cluster_keys: list[SigningKey]) -> Path:
    write_jwks(directory / "cluster-jwks.json", cluster_keys)
    path = directory / "issuers.json"
    path.write_text(
        json.dumps(
            [
                {"issuer": IDP, "audiences": [AUDIENCE], "jwks_url": jwks_url},
                {
                    "issuer": CLUSTER,
                    "audiences": [AUDIENCE],
                    "jwks_file": "cluster-jwks.json",
                    "kubernetes": True,
                },
            ]
        )
    )
    return path


async def whoami(address: str, credential: Any) -> acc.CallerIdentity:
    async with grpc.aio.insecure_channel(address) as plain:
        stub = access_service_pb2_grpc.AccessServiceStub(plain)
        result: acc.CallerIdentity = await stub.GetCallerIdentity(
            acc.GetCallerIdentityRequest(), metadata=credential
        )
        return result


async def refused(address: str, credential: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await whoami(address, credential)
    return caught.value


async def test_oidc_tokens_groups_and_key_rotation(
    stack: LocalStack, isolated: Isolated, tmp_path: Path
) -> None:
    first, second = SigningKey.rsa("rsa-1"), SigningKey.ec("ec-2")
    with JwksServer([first]) as jwks:
        cluster = [SigningKey.rsa("cluster")]
        isolated.env["MODELREG_OIDC_ISSUERS_FILE"] = str(issuers_file(tmp_path, jwks.url, cluster))
        isolated.start()
        address = isolated.address
        alice = sign(first, claims(IDP, AUDIENCE, "alice@example.com", groups=["ml-team"]))
        me = await whoami(address, bearer(alice))
        assert (me.principal, list(me.groups), me.authentication) == (
            "user:alice@example.com",
            ["group:ml-team"],
            f"jwt:{IDP}",
        )
        # A group binding gives its members a role.
        ns = unique("oidc")
        admin = bearer(isolated.admin_token)
        as_admin = default_credential(lambda: isolated.admin_token)
        async with grpc.aio.insecure_channel(address, interceptors=as_admin) as channel:
            access = access_service_pb2_grpc.AccessServiceStub(channel)
            metadata = metadata_service_pb2_grpc.MetadataServiceStub(channel)
            await access.GrantRole(
                acc.GrantRoleRequest(
                    parent=f"namespaces/{ns}", principal="group:ml-team", role=acc.ROLE_EDITOR
                ),
                metadata=admin,
            )
            model = await metadata.CreateModel(
                md.CreateModelRequest(parent=f"namespaces/{ns}", model_id="m"), metadata=bearer(alice)
            )
            assert model.create_actor == "user:alice@example.com"
            (event,) = await events_when(metadata, 1, resource=model.name)
            assert (event.actor, event.authentication) == ("user:alice@example.com", f"jwt:{IDP}")

        # The wrong audience, an expired token, an unknown issuer: refused, saying why.
        for token, problem in (
            (sign(first, claims(IDP, "another-service", "alice@example.com")), "wrong_audience"),
            (sign(first, claims(IDP, AUDIENCE, "alice@example.com", now=time.time() - 3600)), "expired"),
            (sign(first, claims("https://evil.test", AUDIENCE, "alice@example.com")), "unknown_issuer"),
        ):
            error = await refused(address, bearer(token))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert error_metadata(error)["problem"] == problem

        # Rotation: the issuer publishes a new key and retires the old one.
        jwks.set_keys([second])
        rotated = sign(second, claims(IDP, AUDIENCE, "alice@example.com"))
        deadline = time.monotonic() + 20  # an unknown kid refetches the JWKS (at most every 10 s)
        problems = []
        while True:
            try:
                me = await whoami(address, bearer(rotated))
                break
            except grpc.aio.AioRpcError as exc:
                problems.append(error_metadata(exc)["problem"])
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        assert me.principal == "user:alice@example.com"
        assert set(problems) <= {"unknown_key"}
        old = sign(first, claims(IDP, AUDIENCE, "bob@example.com"))
        assert (await refused(address, bearer(old))).code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_kubernetes_service_account_token_signs_in(
    stack: LocalStack, isolated: Isolated, tmp_path: Path
) -> None:
    cluster = SigningKey.rsa("cluster-1")
    isolated.env["MODELREG_OIDC_ISSUERS_FILE"] = str(
        issuers_file(tmp_path, "http://127.0.0.1:9/unused", [cluster])
    )
    isolated.start()
    token_claims = claims(CLUSTER, AUDIENCE, "system:serviceaccount:ml:trainer")
    token_claims["kubernetes.io"] = {"namespace": "ml", "serviceaccount": {"name": "trainer"}}
    projected = sign(cluster, token_claims)
    me = await whoami(isolated.address, bearer(projected))
    assert (me.principal, me.authentication) == ("serviceaccount:ml/trainer", f"jwt:{CLUSTER}")
    async with grpc.aio.insecure_channel(isolated.address) as channel:
        access = access_service_pb2_grpc.AccessServiceStub(channel)
        metadata = metadata_service_pb2_grpc.MetadataServiceStub(channel)
        create = md.CreateModelRequest(parent="namespaces/ml", model_id="fraud")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await metadata.CreateModel(create, metadata=bearer(projected))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # no role in `ml` yet
        await access.GrantRole(
            acc.GrantRoleRequest(
                parent="namespaces/ml", principal="serviceaccount:ml/trainer", role=acc.ROLE_EDITOR
            ),
            metadata=bearer(isolated.admin_token),
        )
        model = await metadata.CreateModel(create, metadata=bearer(projected))
        assert model.create_actor == "serviceaccount:ml/trainer"
    # A token for another audience (say, the cluster's API server) is not one for the registry.
    other = sign(
        cluster, claims(CLUSTER, "https://kubernetes.default.svc", "system:serviceaccount:ml:trainer")
    )
    error = await refused(isolated.address, bearer(other))
    assert error_metadata(error)["problem"] == "wrong_audience"


async def test_a_client_certificate_is_an_identity_over_mtls(
    stack: LocalStack, isolated: Isolated, tmp_path: Path
) -> None:
    ca = PrivateCa(tmp_path / "pki")
    server = ca.server()
    trainer = ca.client("trainer", dns="trainer.ml.example.test")
    isolated.env.update(
        {
            "MODELREG_TLS_CERT_FILE": str(server.cert_file),
            "MODELREG_TLS_KEY_FILE": str(server.key_file),
            "MODELREG_TLS_CLIENT_CA_FILE": str(ca.ca_file),
            # For the stack's health check, which connects as any client would.
            "MODELREG_TLS_CA_FILE": str(ca.ca_file),
            "MODELREG_TLS_CLIENT_CERT_FILE": str(trainer.cert_file),
            "MODELREG_TLS_CLIENT_KEY_FILE": str(trainer.key_file),
        }
    )
    isolated.start()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.ca_file.read_bytes(),
        private_key=trainer.key_file.read_bytes(),
        certificate_chain=trainer.cert_file.read_bytes(),
    )
    async with grpc.aio.secure_channel(isolated.address, credentials) as channel:
        access = access_service_pb2_grpc.AccessServiceStub(channel)
        me = await access.GetCallerIdentity(acc.GetCallerIdentityRequest())
        assert (me.principal, me.authentication) == (
            "user:trainer.ml.example.test",
            "mtls:trainer.ml.example.test",
        )
        # A bearer token, when sent, is who the caller is (and a bad one is refused, not ignored).
        admin = await access.GetCallerIdentity(
            acc.GetCallerIdentityRequest(), metadata=bearer(isolated.admin_token)
        )
        assert admin.principal == "user:admin"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await access.GetCallerIdentity(
                acc.GetCallerIdentityRequest(), metadata=bearer("mrt_0123456789abcdef_" + "A" * 43)
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Without a client certificate the handshake itself fails.
    async with grpc.aio.secure_channel(
        isolated.address, grpc.ssl_channel_credentials(root_certificates=ca.ca_file.read_bytes())
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await access_service_pb2_grpc.AccessServiceStub(channel).GetCallerIdentity(
                acc.GetCallerIdentityRequest(), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
