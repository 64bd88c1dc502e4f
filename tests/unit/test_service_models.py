"""Every boto3 session labkit makes reads botocore's service models through one loader per process
(labkit/aws/servicemodels.py): a backend made later, or a second one, parses no model again, and `sandbox up` reads
the first ones while its daemon starts. Credentials and regions stay each session's own."""

from __future__ import annotations

import botocore.loaders
import pytest

from labkit.aws import servicemodels
from labkit.sandbox.backend import SandboxBackend

ENDPOINT = "http://127.0.0.1:9"  # never called: clients are only made here


@pytest.fixture
def files_read(monkeypatch) -> list[str]:
    read: list[str] = []
    load = botocore.loaders.JSONFileLoader.load_file

    def counting(self, file_path: str):
        data = load(self, file_path)
        if data is not None:  # a file parsed (a missing optional one, such as `.sdk-extras`, costs a stat)
            read.append(file_path)
        return data

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counting)
    fresh = botocore.loaders.create_loader()  # a process that has read nothing yet (not the unit tests' shared one:
    monkeypatch.setattr(servicemodels, "shared_loader", lambda: fresh)  # support/backends.py caches one per worker)
    return read


def test_a_second_backend_makes_its_clients_without_reading_a_model_again(files_read):
    SandboxBackend("us-east-1", ENDPOINT).client("rds")
    assert any("/rds/" in path for path in files_read), "the first client reads RDS's model"
    files_read.clear()
    other = SandboxBackend("eu-west-1", ENDPOINT)
    rds = other.client("rds")
    assert files_read == [], f"a second backend read {files_read}"
    assert rds.meta.region_name == "eu-west-1", "the region stays the backend's"


def test_sessions_share_models_not_credentials(files_read):
    first = servicemodels.new_session(region_name="us-east-1", aws_access_key_id="AKIAFIRST", aws_secret_access_key="a")
    second = servicemodels.new_session(
        region_name="us-east-1", aws_access_key_id="AKIASECOND", aws_secret_access_key="b"
    )
    assert first.get_credentials().access_key == "AKIAFIRST"
    assert second.get_credentials().access_key == "AKIASECOND"
    first.client("sts", endpoint_url=ENDPOINT)
    files_read.clear()
    second.client("sts", endpoint_url=ENDPOINT)
    assert files_read == []
    assert len(servicemodels.shared_loader().search_paths) == len(set(servicemodels.shared_loader().search_paths))


def test_preload_reads_a_labs_first_models_so_its_first_clients_read_none(files_read):
    servicemodels.preload(("rds", "secretsmanager")).join(timeout=60)
    assert any("/rds/" in path for path in files_read) and any("/secretsmanager/" in path for path in files_read)
    files_read.clear()
    backend = SandboxBackend("us-east-1", ENDPOINT)
    backend.client("rds")
    backend.client("secretsmanager")
    assert files_read == [], f"read after the preload: {files_read}"
