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
    encryption("writer")                this session's TLS version and cipher, from the server's side
    plaintext_refused("writer")         a client without TLS tries, and the server's answer
"""

from __future__ import annotations

from typing import Any

from labkit.aws.backend import Backend

Verification = tuple[str, str]  # (the CA bundle's path, the DNS name the certificate must carry)


def verification(backend: Backend, server_name: str) -> Verification:
    """What a connection to the endpoint `server_name` verifies: the backend's CA bundle, and that name."""
    return backend.trust_store(), server_name


def tunnel_verification(tunnel: Any) -> Verification:
    """What a connection through `tunnel` verifies: its backend's CA bundle, and the endpoint at its far end."""
    return verification(tunnel.backend, tunnel.target.host)
