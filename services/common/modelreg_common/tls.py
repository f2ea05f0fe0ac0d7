"""Transport security of a service: its TLS settings, its credentials, and the mTLS peer.

Plaintext is allowed on loopback addresses only (127.0.0.0/8, ::1, localhost), unless
MODELREG_ALLOW_PLAINTEXT=true says that something else (a service mesh, a TLS-terminating
proxy) protects the network: callers send bearer credentials with every call.

gRPC Python offers two client-certificate policies only: never ask for one, or require one and
verify it against the client CA. So a client CA means mTLS is required, and a certificate in a
call's auth context has always been verified (the invariant `peer_certificate_subject` rests on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from modelreg_api.addresses import is_loopback

from modelreg_common.config import EnvReader

__all__ = [
    "ServerTls",
    "is_loopback",
    "peer_certificate_subject",
    "read_server_tls",
    "server_credentials",
]

CERT_FILE_ENV = "MODELREG_TLS_CERT_FILE"
KEY_FILE_ENV = "MODELREG_TLS_KEY_FILE"
CLIENT_CA_FILE_ENV = "MODELREG_TLS_CLIENT_CA_FILE"
REQUIRE_CLIENT_CERT_ENV = "MODELREG_TLS_REQUIRE_CLIENT_CERT"
ALLOW_PLAINTEXT_ENV = "MODELREG_ALLOW_PLAINTEXT"


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate chain and key (PEM); with `client_ca_file`, clients must present
    a certificate issued by that CA (`require_client_cert`, true exactly when there is one)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    require_client_cert: bool = False

    def __post_init__(self) -> None:
        if self.require_client_cert != (self.client_ca_file is not None):
            raise ValueError(
                "client certificates are required exactly when there is a client CA "
                "(gRPC Python cannot verify an optional client certificate)"
            )


def _der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _certificates(read: EnvReader, key: str, path: Path) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        read.problems.append(f"{key}={path}: cannot read it ({exc.strerror or exc})")
    except ValueError:
        read.problems.append(f"{key}={path}: not PEM certificates")
    else:
        return certificates
    return []


def _check_private_key(read: EnvReader, path: Path, certificate: x509.Certificate | None) -> None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        read.problems.append(f"{KEY_FILE_ENV}={path}: cannot read it ({exc.strerror or exc})")
        return
    except (ValueError, TypeError, UnsupportedAlgorithm):  # TypeError: encrypted
        read.problems.append(f"{KEY_FILE_ENV}={path}: not an unencrypted PEM private key")
        return
    if certificate is not None and _der(key.public_key()) != _der(certificate.public_key()):
        read.problems.append(f"{KEY_FILE_ENV}={path}: not the key of the certificate in {CERT_FILE_ENV}")


def read_server_tls(read: EnvReader, listen_addr: str) -> ServerTls | None:
    """The service's TLS settings (None: plaintext), problems reported through `read`.

    Without TLS, `listen_addr` must be a loopback address unless MODELREG_ALLOW_PLAINTEXT=true.
    """
    problems = len(read.problems)
    cert = read.text(CERT_FILE_ENV, "")
    key = read.text(KEY_FILE_ENV, "")
    client_ca = read.text(CLIENT_CA_FILE_ENV, "")
    require = read.flag(REQUIRE_CLIENT_CERT_ENV, bool(client_ca))
    allow_plaintext = read.flag(ALLOW_PLAINTEXT_ENV, False)
    if bool(cert) != bool(key):
        read.problems.append(f"{CERT_FILE_ENV} and {KEY_FILE_ENV} go together: set both for TLS, or neither")
    if client_ca and not cert:
        read.problems.append(f"{CLIENT_CA_FILE_ENV} needs {CERT_FILE_ENV} and {KEY_FILE_ENV}: mTLS is TLS")
    if require and not client_ca:
        read.problems.append(
            f"{REQUIRE_CLIENT_CERT_ENV}=true needs {CLIENT_CA_FILE_ENV} (the CA of the client certificates)"
        )
    if client_ca and not require:
        read.problems.append(
            f"{REQUIRE_CLIENT_CERT_ENV}=false with {CLIENT_CA_FILE_ENV}: gRPC Python can only require a "
            f"verified client certificate or not ask for one; unset {REQUIRE_CLIENT_CERT_ENV} for mTLS, "
            f"or unset {CLIENT_CA_FILE_ENV} for TLS without client certificates"
        )
    if not cert and not key:
        if not allow_plaintext and listen_addr and not is_loopback(listen_addr):
            read.problems.append(
                f"listening on {listen_addr} (not a loopback address) without TLS: set {CERT_FILE_ENV} and "
                f"{KEY_FILE_ENV}, listen on 127.0.0.1, or set {ALLOW_PLAINTEXT_ENV}=true when a service "
                "mesh or proxy secures the network"
            )
        return None
    chain = _certificates(read, CERT_FILE_ENV, Path(cert)) if cert else []
    if cert and key:
        _check_private_key(read, Path(key), chain[0] if chain else None)
    if client_ca:
        _certificates(read, CLIENT_CA_FILE_ENV, Path(client_ca))
    if len(read.problems) > problems:
        return None
    return ServerTls(Path(cert), Path(key), Path(client_ca) if client_ca else None, require)


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """gRPC credentials from the files named by `tls`, read now."""
    return grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
        root_certificates=tls.client_ca_file.read_bytes() if tls.client_ca_file is not None else None,
        require_client_auth=tls.require_client_cert,
    )


def _text(values: Iterable[bytes]) -> list[str]:
    texts = []
    for value in values:
        try:
            texts.append(value.decode())
        except UnicodeDecodeError:
            continue
    return texts


def peer_certificate_subject(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """Who the verified client certificate of a call names, from `context.auth_context()`.

    The first subjectAltName of type URI, DNS or email (in the certificate's order), else the
    subject's common name; None unless the call came over TLS with a client certificate.
    What gRPC exposes for an mTLS peer: `transport_security_type` [b"ssl"], `x509_pem_cert`,
    `x509_subject_alternative_name` (every SAN, IP addresses included, in order), typed copies
    in `peer_uri`, `peer_dns`, `peer_email`, `peer_ip`, and `x509_common_name`. Without a client
    certificate only the transport properties are there.
    """
    if list(auth_context.get("transport_security_type", ())) != [b"ssl"]:
        return None
    if not list(auth_context.get("x509_pem_cert", ())):
        return None
    named = {
        name for kind in ("peer_uri", "peer_dns", "peer_email") for name in _text(auth_context.get(kind, ()))
    }
    for name in _text(auth_context.get("x509_subject_alternative_name", ())):
        if name in named:
            return name
    common_names = [name for name in _text(auth_context.get("x509_common_name", ())) if name]
    return common_names[0] if common_names else None
