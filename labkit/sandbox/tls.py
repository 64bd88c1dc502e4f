"""The sandbox's certificate authority: one per labkit home, and a server certificate per database server.

Aurora gives every DB instance a certificate signed by the RDS certificate authority, whose names are the
endpoints' own (RDS's certificates carry wildcards such as `*.cluster-abc.us-east-1.rds.amazonaws.com`), and a
client that verifies it (libpq's `sslmode=verify-full`, the MySQL drivers' identity check) checks both the chain and
the name. The sandbox does the same with a certificate authority of the home's own: made once (`CA_DIR` under the
home's data folder, the key 0600, the folder 0700), it signs each server's certificate for the endpoint names the
control plane gave its cluster and instance, in RDS's wildcard shape, and for 127.0.0.1. So labkit's clients run
one verifying path on both backends; only the bundle they trust differs (labkit.access.tls).

The key is the home's: a certificate it signs is trusted by this home's clients only, and it never leaves the home.
Elliptic-curve keys (P-256): made in a millisecond, so a server's certificate is made again whenever its names
change or it nears its end, at the server's start. Runs in the daemon (the reconciler) and, for `ca_file`, in
the client.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from labkit.errors import SandboxError
from labkit.home import private_dir

CA_DIR = "tls"  # under the home's data folder
CA_CERT = "ca.pem"  # what clients trust (not secret, but kept with the key, 0600 like everything in the home)
CA_KEY = "ca.key"  # never leaves this folder
CA_DAYS = 3650
SERVER_DAYS = 397  # the longest a public TLS certificate may live
RENEW_DAYS = 30  # a server certificate this close to its end is made again at the server's start
ORGANIZATION = "labkit sandbox"
_lock = threading.Lock()


@dataclass(frozen=True)
class ServerCertificate:
    """A server's certificate (PEM, with no chain: the CA signs it directly), its key, and the CA's certificate."""

    certificate: bytes
    key: bytes
    ca: bytes


def ca_folder(data_root: Path) -> Path:
    return data_root / CA_DIR


def ca_file(data_root: Path) -> Path:
    """The CA certificate a client of this home trusts (made on first use)."""
    _authority(data_root)
    return ca_folder(data_root) / CA_CERT


def endpoint_names(*endpoints: str) -> tuple[str, ...]:
    """The names a server's certificate covers for these endpoint DNS names, as RDS writes them: each endpoint's
    parent domain as a wildcard (`*.cluster-abc.us-east-1.rds.amazonaws.com` covers the cluster endpoint of any
    cluster with that identifier part), in a stable order, without duplicates."""
    names: list[str] = []
    for endpoint in endpoints:
        host = endpoint.strip().rstrip(".").lower()
        if host.count(".") >= 2:
            names.append("*." + host.split(".", 1)[1])
        elif host:
            names.append(host)
    return tuple(sorted(set(names)))


def server_certificate(data_root: Path, names: tuple[str, ...], previous: Path | None = None) -> ServerCertificate:
    """A certificate for `names` (DNS names or wildcards) and 127.0.0.1, signed by the home's CA. `previous`: the
    PEM file of the server's current certificate, kept (with the key beside it, `.key`) when it is this CA's, has
    the same names and is not near its end."""
    ca_certificate, ca_key = _authority(data_root)
    ca_pem = ca_certificate.public_bytes(serialization.Encoding.PEM)
    if previous is not None:
        kept = _still_good(previous, ca_certificate, names)
        if kept is not None:
            return ServerCertificate(kept[0], kept[1], ca_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    alternatives: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alternatives += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    common_name = (names or ("localhost",))[0]
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ServerCertificate(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key), ca_pem)


def write_sysbench_files(data_root: Path, folder: Path) -> Path:
    """What sysbench 1.0 needs for `--mysql-ssl=on` in its working folder: it reads cacert.pem, client-cert.pem and
    client-key.pem from there, under those names, with no option to name others (its MySQL driver hard-codes them).
    The CA is the home's; the client pair is one of its certificates (the servers do not ask for one, but sysbench
    hands it over). Returns `folder`, to run sysbench in."""
    made = server_certificate(data_root, ())
    for name, data in (("cacert.pem", made.ca), ("client-cert.pem", made.certificate), ("client-key.pem", made.key)):
        write_private(folder / name, data)
    return folder


def write_private(path: Path, data: bytes) -> None:
    """Write `path` readable by its owner only from the first byte (a key must never be readable by others, and
    both servers refuse a key file that is)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    path.chmod(0o600)


def _still_good(path: Path, ca_certificate: x509.Certificate, names: tuple[str, ...]) -> tuple[bytes, bytes] | None:
    try:
        pem = path.read_bytes()
        key_pem = path.with_suffix(".key").read_bytes()
        current = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError):
        return None
    try:
        covered = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    left = current.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    if (
        current.issuer != ca_certificate.subject
        or set(covered.get_values_for_type(x509.DNSName)) != {*names, "localhost"}
        or left < datetime.timedelta(days=RENEW_DAYS)
    ):
        return None
    try:
        current.verify_directly_issued_by(ca_certificate)
    except (InvalidSignature, TypeError, ValueError):  # signed by another key (a CA made again): make a new one
        return None
    return pem, key_pem


def _authority(data_root: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The home's CA, made on first use (the key 0600 in a 0700 folder)."""
    folder = ca_folder(data_root)
    with _lock:
        try:
            certificate = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), password=None)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                return certificate, key
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            raise SandboxError(
                f"the sandbox's certificate authority in {folder} cannot be read: {exc}",
                field="tls",
                fix=f"remove {folder} (it holds no data; a new one is made) and run `labkit sandbox up` again",
            ) from None
        return _make_authority(folder)


def _make_authority(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new CA, made in a folder of its own and renamed into place in one step: the daemon and a client may both
    make one at once, and whichever rename comes second finds the first's CA and uses it (never a key of one with
    the certificate of the other)."""
    private_dir(folder.parent)
    making = folder.with_name(f".{folder.name}-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(making, ignore_errors=True)
    private_dir(making)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, f"labkit sandbox CA {os.urandom(4).hex()}"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(making / CA_KEY, _key_pem(key))
    write_private(making / CA_CERT, certificate.public_bytes(serialization.Encoding.PEM))
    try:
        os.rename(making, folder)
    except OSError:  # another process made it first (the folder exists and is not empty): use that one
        shutil.rmtree(making, ignore_errors=True)
        existing = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
        existing_key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), password=None)
        if not isinstance(existing_key, ec.EllipticCurvePrivateKey):
            raise
        return existing, existing_key
    return certificate, key


def _key_usage(signs_certificates: bool) -> x509.KeyUsage:
    """A CA's key signs certificates; a server's key signs its handshakes and agrees keys (ECDHE)."""
    return x509.KeyUsage(
        digital_signature=not signs_certificates, key_encipherment=False, content_commitment=False,
        data_encipherment=False, key_agreement=not signs_certificates, key_cert_sign=signs_certificates,
        crl_sign=signs_certificates, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
