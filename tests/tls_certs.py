"""A private certificate authority for tests: a CA, server and client certificates as PEM files.

    ca = PrivateCa(tmp_path / "pki")
    server = ca.server()                                     # 127.0.0.1, ::1 and localhost
    alice = ca.client("alice", uri="spiffe://example.org/alice")
    plain = ca.client("bob", common_name="bob")              # no SAN: the principal is the CN

Keys are ECDSA P-256 (fast to generate, accepted by gRPC's BoringSSL), unencrypted PKCS#8.
Everything lands in the directory given: a temporary one that the test removes.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)
# Not-before a little in the past: a fresh certificate must not fail on a clock a second behind.
_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert_file: Path
    key_file: Path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


class PrivateCa:
    """A self-signed CA in `directory` (created if needed) that issues leaf certificates."""

    def __init__(self, directory: Path, *, name: str = "modelreg test CA"):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        public = self._key.public_key()
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def server(
        self,
        name: str = "server",
        *,
        dns: Sequence[str] = ("localhost",),
        ips: Sequence[str] = ("127.0.0.1", "::1"),
    ) -> KeyPair:
        """A server certificate valid for `dns` names and `ips` addresses (subjectAltName)."""
        names: list[x509.GeneralName] = [x509.DNSName(host) for host in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        return self._issue(name, names, common_name=name, usage=ExtendedKeyUsageOID.SERVER_AUTH)

    def client(
        self,
        name: str,
        *,
        uri: str | None = None,
        dns: str | None = None,
        email: str | None = None,
        common_name: str | None = None,
    ) -> KeyPair:
        """A client certificate with the subjectAltNames given (in the order uri, dns, email) and
        the CN `common_name` (or `name` when it is None). Files: `<name>.pem`, `<name>.key`."""
        names: list[x509.GeneralName] = []
        if uri is not None:
            names.append(x509.UniformResourceIdentifier(uri))
        if dns is not None:
            names.append(x509.DNSName(dns))
        if email is not None:
            names.append(x509.RFC822Name(email))
        return self._issue(
            name,
            names,
            common_name=name if common_name is None else common_name,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )

    def _issue(
        self,
        file_name: str,
        alt_names: list[x509.GeneralName],
        *,
        common_name: str,
        usage: x509.ObjectIdentifier,
    ) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if alt_names:
            # An empty subject requires a critical subjectAltName (RFC 5280 4.2.1.6).
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=not common_name)
        cert = builder.sign(self._key, hashes.SHA256())
        pair = KeyPair(self.directory / f"{file_name}.pem", self.directory / f"{file_name}.key")
        pair.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, pair.key_file)
        return pair
