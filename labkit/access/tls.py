"""Encryption in transit: every connection labkit makes to a database is TLS, verified the way libpq's
`sslmode=verify-full` verifies, on both backends.

A Session Manager tunnel encrypts the hop from this machine to the EC2 instance, but the instance then opens a plain
TCP connection to the database: that hop, inside the VPC, carries the SQL and the results in the clear unless the
client asks the server for TLS. labkit's clients ask, and check two things of the certificate the server presents:
its chain (signed by a certificate authority they trust: AWS's RDS CAs, or the sandbox home's own, see
`Backend.trust_store`) and its name (the endpoint's DNS name, not 127.0.0.1, which is where a tunnel's socket goes).
Together they mean the server is the endpoint's, not something in between that answers on its port.

    verification(backend, endpoint)     (CA file, name to verify): what a connection to `endpoint` checks
    tunnel_verification(tunnel)         the same for the endpoint at a tunnel's far end
    certificate_refused(message)        whether a failed connection's words say the certificate was refused
    certificate_error(on, name, words)  that refusal as a LabkitError with its fix

What the workbook shows of it (the server's view of a session's TLS, a plaintext client refused) is in
labkit.access.encryption.
"""

from __future__ import annotations

from typing import Any

from labkit.aws.backend import Backend
from labkit.errors import LabkitError

Verification = tuple[str, str]  # (the CA bundle's path, the DNS name the certificate must carry)


def verification(backend: Backend, server_name: str) -> Verification:
    """What a connection to the endpoint `server_name` verifies: the backend's CA bundle, and that name."""
    return backend.trust_store(), server_name


def tunnel_verification(tunnel: Any) -> Verification:
    """What a connection through `tunnel` verifies: its backend's CA bundle, and the endpoint at its far end."""
    return verification(tunnel.backend, tunnel.target.host)


# How the drivers word a certificate they refused: Python's ssl module, libpq, libmysqlclient.
REFUSED_CERTIFICATE = (
    "certificate verify failed", "does not match host name", "hostname mismatch", "not valid for",
    "ssl connection error", "self-signed certificate", "unable to get local issuer certificate",
)  # fmt: skip


def certificate_refused(message: str) -> bool:
    """Whether a failed connection's words say the client refused the server's certificate."""
    lowered = message.lower()
    return any(words in lowered for words in REFUSED_CERTIFICATE)


def certificate_error(on: str, server_name: str, message: str) -> LabkitError:
    """A refused certificate as a LabkitError: nothing was sent to that server, and what to check."""
    return LabkitError(
        f"the database behind {on} presented a certificate that does not prove it is {server_name}: {message}. "
        "The connection was closed before any password or query was sent",
        field="tls",
        fix="connect through labkit (labkit.sql, labkit.tunnel) to the lab's own endpoints; if the sandbox was "
        "reset or its home moved, restart it (`labkit sandbox down` then `labkit sandbox up`) so its servers get "
        "certificates from this home's CA; on AWS, delete the cached bundle (tls/rds-global-bundle.pem in the "
        "labkit home) to fetch AWS's current one",
    )
