"""The daemon reads and parses each API request once (sandbox/daemon/request.py), for every middleware in front
of moto, and moto still gets the whole body."""

from __future__ import annotations

import io
import json
from typing import Any

from labkit.sandbox.daemon.catalog import EngineCatalog
from labkit.sandbox.daemon.changes import is_mutating
from labkit.sandbox.daemon.request import api_request

SCOPE = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-west-1/{service}/aws4_request, SignedHeaders=host"


class CountingBody(io.BytesIO):
    reads = 0

    def read(self, size: int | None = -1) -> bytes:
        CountingBody.reads += 1
        return super().read(size)


def _environ(body: bytes, service: str, content_type: str, target: str = "") -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": content_type,
        "HTTP_AUTHORIZATION": SCOPE.format(service=service), "wsgi.input": CountingBody(body),
    }  # fmt: skip
    if target:
        environ["HTTP_X_AMZ_TARGET"] = target
    return environ


def test_a_query_request_is_read_once_for_every_layer_and_moto_still_reads_it_whole(monkeypatch):
    monkeypatch.setattr(CountingBody, "reads", 0)
    body = b"Action=CreateDBInstance&DBInstanceIdentifier=lab-writer&Engine=aurora-mysql"
    environ = _environ(body, "rds", "application/x-www-form-urlencoded; charset=utf-8")
    seen: list[bytes] = []

    def moto(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b""]

    assert is_mutating(environ)
    EngineCatalog(moto)(environ, lambda status, headers: None)  # not a catalog call: passed on to moto
    request = api_request(environ)
    assert request is api_request(environ)
    assert (request.action, request.region, request.service) == ("CreateDBInstance", "eu-west-1", "rds")
    assert request.param("DBInstanceIdentifier") == "lab-writer"
    assert request.region_of("rds") == "eu-west-1" and request.region_of("ec2", "us-east-1") == "us-east-1"
    assert CountingBody.reads == 1, "one read of the client's stream, whatever the number of layers"
    assert seen == [body]


def test_a_json_request_has_its_action_from_the_target_and_reads_its_body_as_json():
    body = json.dumps({"SecretId": "lab-secret"}).encode()
    environ = _environ(body, "secretsmanager", "application/x-amz-json-1.1", target="secretsmanager.GetSecretValue")
    request = api_request(environ)
    assert request.action == "GetSecretValue" and not request.form_encoded
    assert request.json() == {"SecretId": "lab-secret"}
    assert not is_mutating(environ)
    assert api_request(_environ(b"[1]", "ssm", "application/x-amz-json-1.1", "AmazonSSM.StartSession")).json() == {}
