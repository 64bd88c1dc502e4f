"""A sandbox backend that behaves as AWS does for reachability: this machine cannot reach the database endpoints.

For the tests of the AWS paths that run on the lab's instance (the benchmark's direct path, the failover lab):
a direct connection from here is recorded and fails as one to a private address does from outside the VPC.
"""

from __future__ import annotations

import pymysql

from labkit.sandbox.backend import SandboxBackend


class AwsLikeBackend(SandboxBackend):
    """The sandbox, except that this machine cannot reach the database endpoints (as on AWS)."""

    reaches_private_endpoints = False

    def __init__(self) -> None:
        super().__init__()
        self.direct: list[str] = []  # every endpoint this side tried to reach straight

    def resolve(self, host: str, port: int) -> tuple[str, int]:
        self.direct.append(host)
        raise pymysql.err.OperationalError(2003, f"Can't connect to MySQL server on '{host}' (timed out)")
