"""A cluster's managed master secret as RDS keeps it: its own generated password from CreateDBCluster on, and
RotateSecret done as RDS does it, a new password on the database, then in the secret.

moto's managed secret holds the same fixed password for every cluster. RDS generates one per cluster when it
creates it, so the daemon puts a generated password in the secret before CreateDBCluster answers (and the
answer is saved with it): a client that reads the secret at once, before any DB instance exists, reads the
password the writer will be bootstrapped with.

Runs in the daemon, as WSGI middleware in front of moto (in the moto server's request threads). RDS rotates the
secret it manages for a cluster (`ManageMasterUserPassword`) itself, every 7 days by default or when asked with
`RotateSecret` ("Password management with Amazon Aurora and AWS Secrets Manager"): no Lambda function of the
learner's is involved. moto would only add an AWSPENDING version and wait for a Lambda that never comes, so the
daemon answers the call: it sets a generated password on the cluster's writer (replicated to the readers as a
hash, never as text), then stores it as the secret's new AWSCURRENT version. Clients that kept the old password
get "access denied" and read the secret again (labkit.sql and the web app do so once).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from labkit.sandbox.daemon.changes import call_buffered
from labkit.sandbox.daemon.request import api_request

log = logging.getLogger("labkit.sandbox.daemon.rotation")
TARGET = "secretsmanager.RotateSecret"


def _rds_backend(region: str) -> Any:
    from moto.backends import get_backend  # moto loads with the first call that needs it, not at import
    from moto.core import DEFAULT_ACCOUNT_ID

    return get_backend("rds")[DEFAULT_ACCOUNT_ID][region]


def _secrets_backend(region: str) -> Any:
    from moto.backends import get_backend  # moto loads with the first call that needs it, not at import
    from moto.core import DEFAULT_ACCOUNT_ID

    return get_backend("secretsmanager")[DEFAULT_ACCOUNT_ID][region]


class RotateManagedSecrets:
    """WSGI middleware: RotateSecret on a cluster's managed secret changes the database password, then the secret.

    `cluster_of_secret(arn)` names the cluster whose managed secret `arn` is (None for any other secret, which
    moto handles); `set_master_password(cluster, password)` changes it on the cluster's writer.
    """

    def __init__(
        self,
        app: Any,
        cluster_of_secret: Callable[[str], str | None],
        set_master_password: Callable[[str, str], None],
        new_password: Callable[[], str],
    ) -> None:
        self.app = app
        self.cluster_of_secret = cluster_of_secret
        self.set_master_password = set_master_password
        self.new_password = new_password

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET") != TARGET:
            return self.app(environ, start_response)
        request = api_request(environ)
        secret_id = str(request.json().get("SecretId", ""))
        region = request.region_of("secretsmanager", "us-east-1")
        secret = _find(region, secret_id)
        cluster = self.cluster_of_secret(secret.arn) if secret is not None else None
        if secret is None or cluster is None:
            return self.app(environ, start_response)  # not a cluster's managed secret: moto's behaviour
        try:
            version = self._rotate(region, secret, cluster)
        except Exception as exc:  # the database refused or is down: nothing changed in the secret
            log.exception("rotating the master password of %s failed", cluster)
            return _error(start_response, "InternalServiceError", f"rotation of {cluster}'s password failed: {exc}")
        answer = json.dumps({"ARN": secret.arn, "Name": secret.name, "VersionId": version}).encode()
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(answer)))])
        return [answer]

    def _rotate(self, region: str, secret: Any, cluster: str) -> str:
        value = json.loads(secret.secret_string or "{}")
        value["password"] = self.new_password()
        self.set_master_password(cluster, value["password"])  # first the database, as RDS does
        version = _store(region, secret.arn, value)
        log.info("rotated the master password of %s", cluster)
        return version


class PasswordAtCreate:
    """WSGI middleware: CreateDBCluster with ManageMasterUserPassword puts a password generated for the cluster
    in its secret before the call answers (moto's is one fixed value for every cluster)."""

    def __init__(self, app: Any, new_password: Callable[[], str]) -> None:
        self.app = app
        self.new_password = new_password

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = api_request(environ)
        if not (request.form_encoded and request.action == "CreateDBCluster"):
            return self.app(environ, start_response)
        params = request.params()
        if params.get("ManageMasterUserPassword", "").lower() != "true":
            return self.app(environ, start_response)
        status, headers, body = call_buffered(self.app, environ)
        if status.startswith("200"):
            region = request.region_of("rds", "us-east-1")
            clusters = _rds_backend(region).clusters
            name = params.get("DBClusterIdentifier", "")
            model = clusters.get(name) or clusters.get(name.lower())
            secret = getattr(model, "master_user_secret", None)
            if secret is not None:
                value = json.loads(secret.secret.secret_string or "{}")
                value["password"] = self.new_password()
                _store(region, secret.secret_arn, value)
        start_response(status, headers)
        return [body]


def _store(region: str, arn: str, value: dict[str, Any]) -> str:
    """Put `value` as the secret's new AWSCURRENT version; its version id."""
    version = _secrets_backend(region).put_secret_value(
        secret_id=arn, secret_string=json.dumps(value), secret_binary=None,  # type: ignore[arg-type]
        client_request_token=None, version_stages=["AWSCURRENT"],  # type: ignore[arg-type]
    )  # fmt: skip
    return str(json.loads(version)["VersionId"])  # moto answers PutSecretValue's JSON


def _find(region: str, secret_id: str) -> Any:
    backend = _secrets_backend(region)
    if not secret_id or not backend._is_valid_identifier(secret_id):
        return None
    return backend.secrets[secret_id]


def _error(start_response: Any, code: str, message: str) -> list[bytes]:
    body = json.dumps({"__type": code, "message": message}).encode()
    start_response(
        "500 Internal Server Error", [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
    )
    return [body]
