"""A gRPC health check over TLS, for Kubernetes `exec` probes of a service serving TLS.

    python /opt/modelreg/grpc_health_probe.py --port 50051 --ca /etc/modelreg/tls/ca.crt \
        [--service modelregistry.v1.MetadataService] [--client-cert F --client-key F]
    python /opt/modelreg/grpc_health_probe.py --port 50051 --plaintext   # compose healthchecks

Kubelet's own `grpc` probe speaks plaintext only, and a service with MODELREG_TLS_CERT_FILE
serves TLS only (docs/tls.md), so the prod overlay probes with this script inside the container.
It dials 127.0.0.1 and verifies the server certificate against `--ca` under the first DNS name
the certificate itself names (read from MODELREG_TLS_CERT_FILE, the service's own setting), so
the check proves the certificate and key the service serves are valid, not only that a port is
open. Exit 0 when the service answers SERVING, 1 otherwise (NOT_SERVING, unreachable, timeout).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

CERT_FILE_ENV = "MODELREG_TLS_CERT_FILE"


def first_dns_name(cert_file: Path) -> str:
    """The name clients dial, as the service's certificate states it (subjectAltName DNS)."""
    certificate = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = names.get_values_for_type(x509.DNSName)
    if not dns:
        raise ValueError(f"{cert_file} names no DNS name to verify the server by")
    return dns[0]


def tls_channel(port: int, ca_file: Path, cert_file: Path, client: tuple[Path, Path] | None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca_file.read_bytes(),
        private_key=client[1].read_bytes() if client else None,
        certificate_chain=client[0].read_bytes() if client else None,
    )
    options = [("grpc.ssl_target_name_override", first_dns_name(cert_file))]
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options)


def check(channel: grpc.Channel, service: str, timeout: float) -> str:
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--service", default="", help="a service name; empty: the whole server")
    parser.add_argument("--ca", type=Path, help="the CA that issued the service's certificate")
    parser.add_argument("--plaintext", action="store_true", help="a plaintext port (compose, a mesh)")
    parser.add_argument("--client-cert", type=Path, help="for an mTLS port: a client certificate")
    parser.add_argument("--client-key", type=Path)
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    cert_file = os.environ.get(CERT_FILE_ENV, "")
    if not args.plaintext and not (cert_file and args.ca):
        print(f"TLS needs --ca and {CERT_FILE_ENV} (the service's own); else --plaintext", file=sys.stderr)  # noqa: T201
        return 1
    client = (args.client_cert, args.client_key) if args.client_cert and args.client_key else None
    try:
        channel = (
            grpc.insecure_channel(f"127.0.0.1:{args.port}")
            if args.plaintext
            else tls_channel(args.port, args.ca, Path(cert_file), client)
        )
        status = check(channel, args.service, args.timeout)
    except (grpc.RpcError, OSError, ValueError) as exc:
        print(f"health check failed: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    if status != "SERVING":
        print(f"health: {status}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
