"""Every backend's boto3 session reads botocore's service models through one loader per process
(labkit.aws.backend.boto3_session): each labkit call makes a backend of its own, and each parsed the models again
(a notebook's checkpoint spent 1.4 s of its 3.4 s in json.loads). What stays each session's own: credentials and
event handlers. No test here sends a request."""

from __future__ import annotations

import pytest
from botocore.loaders import JSONFileLoader

from labkit.aws.backend import AwsBackend, boto3_session
from labkit.sandbox.backend import SandboxBackend

NOWHERE = "http://127.0.0.1:9"  # a client needs an endpoint; nothing is sent to it


@pytest.mark.parametrize("backend", [SandboxBackend, AwsBackend], ids=["sandbox", "aws"])
def test_a_new_backend_parses_no_service_model_again(lab_home, monkeypatch, backend):
    backend().session().client("rds", endpoint_url=NOWHERE)  # the first: parsed here if not already
    parsed = []
    load_file = JSONFileLoader.load_file
    monkeypatch.setattr(JSONFileLoader, "load_file", lambda self, path: parsed.append(path) or load_file(self, path))
    for _ in range(3):
        backend().session().client("rds", endpoint_url=NOWHERE)
    assert [path for path in parsed if "service-2" in path] == []


def test_sessions_share_the_models_and_nothing_else(lab_home):
    first = boto3_session(region_name="us-east-1", aws_access_key_id="AKIAFIRST", aws_secret_access_key="one")
    loader = first._session.get_component("data_loader")
    paths = list(loader.search_paths)
    second = boto3_session(region_name="eu-west-1", aws_access_key_id="AKIASECOND", aws_secret_access_key="two")
    seen = []
    second.events.register("before-call", lambda **kwargs: seen.append(kwargs))
    for _ in range(5):
        boto3_session(region_name="us-east-1")
    assert second._session.get_component("data_loader") is loader
    assert loader.search_paths == paths  # boto3 appends its data folder at each Session: kept once
    assert first.get_credentials().access_key == "AKIAFIRST" and second.get_credentials().access_key == "AKIASECOND"
    assert (first.region_name, second.region_name) == ("us-east-1", "eu-west-1")
    assert first.events is not second.events
