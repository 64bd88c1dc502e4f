"""The suite's guard against real AWS refuses every endpoint setting off loopback (issue 15, item 10)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.aws_guard import foreign_config_endpoints, foreign_endpoint_variables, foreign_endpoints, network_lookups

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "name", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_RDS", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_SECRETS_MANAGER"]
)
def test_every_endpoint_variable_off_loopback_is_refused(name):
    assert foreign_endpoint_variables({name: "https://rds.us-east-1.amazonaws.com"}) == [
        f"{name}=https://rds.us-east-1.amazonaws.com"
    ]
    assert foreign_endpoint_variables({name: "http://10.1.2.3:5000"})


@pytest.mark.parametrize("url", ["http://127.0.0.1:5000", "http://localhost:1", "http://[::1]:8", ""])
def test_loopback_and_empty_endpoint_variables_pass(url):
    assert foreign_endpoint_variables({"AWS_ENDPOINT_URL_STS": url, "AWS_REGION": "us-east-1"}) == []


def test_config_file_endpoints_in_profiles_and_services_sections_are_refused(tmp_path):
    config = tmp_path / "config"
    config.write_text(
        "[default]\nregion = us-east-1\nservices = mine\n\n"
        "[profile other]\nendpoint_url = http://127.0.0.1:5000\n\n"
        "[profile far]\nendpoint_url = https://example.com\n\n"
        "[services mine]\nrds =\n  endpoint_url = http://192.0.2.7:4566\nsts =\n  endpoint_url = http://localhost:9\n"
    )
    found = foreign_config_endpoints(config)
    assert len(found) == 2
    assert any("[profile far].endpoint_url = https://example.com" in line for line in found)
    assert any("[services mine].rds.endpoint_url = http://192.0.2.7:4566" in line for line in found)
    assert foreign_endpoints({"AWS_CONFIG_FILE": str(config)}) == found


def test_missing_or_empty_config_file_passes(tmp_path):
    assert foreign_config_endpoints(tmp_path / "nothing") == []
    assert foreign_config_endpoints(os.devnull) == []


def _pytest_with(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Collect one test of this file under the suite's conftest with `env` added; the guard should stop it.
    (Collecting is enough: the guard runs at session start, and nothing is written into the tree.)"""
    test = f"{Path(__file__).relative_to(TESTS.parent)}::test_missing_or_empty_config_file_passes"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "--collect-only", test],
        cwd=TESTS.parent, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_clean_environment_runs(tmp_path):
    """The probe itself collects when nothing points off loopback (so the refusals below mean something)."""
    run = _pytest_with(tmp_path, AWS_ENDPOINT_URL_EC2="http://127.0.0.1:9")
    assert run.returncode == 0, run.stdout + run.stderr


def test_session_refuses_a_per_service_endpoint_variable(tmp_path):
    """The reported case: AWS_ENDPOINT_URL_RDS pointing off loopback used to run the tests against it."""
    run = _pytest_with(tmp_path, AWS_ENDPOINT_URL_RDS="http://192.0.2.1:9")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "AWS_ENDPOINT_URL_RDS=http://192.0.2.1:9" in run.stdout + run.stderr


def test_session_refuses_the_users_config_file_endpoint(tmp_path):
    config = tmp_path / "config"
    config.write_text("[services lab]\nec2 =\n  endpoint_url = https://ec2.example.com\n")
    run = _pytest_with(tmp_path, AWS_CONFIG_FILE=str(config))
    assert run.returncode == 3, run.stdout + run.stderr
    assert "https://ec2.example.com" in run.stdout + run.stderr


def test_the_credential_chain_without_keys_finds_none_and_asks_no_address(monkeypatch):
    """A test that removes the fake keys (to see "no credentials", issue 27) gets none, with no packet sent: without
    AWS_EC2_METADATA_DISABLED botocore's chain asked the instance-metadata address 169.254.169.254."""
    import botocore.session

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    asked = []

    def refuse(sock, address):
        asked.append(address)
        raise ConnectionRefusedError(f"the test suite sends nothing to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert botocore.session.Session().get_credentials() is None
    assert asked == []


@pytest.mark.parametrize(
    "setting",
    [
        {"AWS_EC2_METADATA_DISABLED": "false"},
        {"AWS_EC2_METADATA_DISABLED": ""},
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials"},
        {"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/token"},
    ],
)
def test_a_credential_lookup_off_the_machine_is_refused(setting):
    found = network_lookups({"AWS_EC2_METADATA_DISABLED": "true", **setting})
    assert len(found) == 1 and found[0].startswith(next(iter(setting)))
    assert network_lookups({"AWS_EC2_METADATA_DISABLED": "true"}) == []
