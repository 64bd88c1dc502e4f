"""Which backend a command uses, and what a learner sees when the aws backend's keys cannot be used (issue 27,
item 4): LABKIT_BACKEND wins over lab.toml's `backend`, a bad value in either place is refused before any work,
and missing, incomplete or refused credentials give a message with the fix, never a traceback. No test here
sends a packet: the AWS endpoint is a loopback port nothing listens on, and botocore fails before sending."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from support.cli_run import run_labkit as _run

from labkit.cli.exits import handles_errors
from labkit.config import LabConfig
from labkit.errors import ConfigError

REFUSING_ENDPOINT = "http://127.0.0.1:9"  # loopback, and nothing listens on the discard port


def _lab_toml(home, backend: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "lab.toml").write_text(f'backend = "{backend}"\n')


def test_labkit_backend_wins_over_the_lab_toml(lab_home, monkeypatch):
    _lab_toml(lab_home, "sandbox")
    monkeypatch.setenv("LABKIT_BACKEND", "aws")
    assert LabConfig.load().backend == "aws"
    monkeypatch.setenv("LABKIT_BACKEND", "sandbox")
    _lab_toml(lab_home, "aws")
    assert LabConfig.load().backend == "sandbox"
    monkeypatch.delenv("LABKIT_BACKEND")
    assert LabConfig.load().backend == "aws"  # unset: the file's choice
    monkeypatch.setenv("LABKIT_BACKEND", "aws")
    assert LabConfig(backend="sandbox").backend == "sandbox"  # an explicit choice in Python wins over both


@pytest.mark.parametrize("value", ["xyz", "AWS2", "sand box"])
def test_a_labkit_backend_that_is_no_backend_is_refused_even_with_a_lab_toml(lab_home, monkeypatch, capsys, value):
    _lab_toml(lab_home, "sandbox")
    monkeypatch.setenv("LABKIT_BACKEND", value)
    with pytest.raises(ConfigError) as refused:
        LabConfig.load()
    assert refused.value.field == "LABKIT_BACKEND" and "lab.toml" in (refused.value.fix or "")
    code, text = _run(capsys, "status")
    assert code == 2 and "LABKIT_BACKEND" in text and "fix:" in text and "Traceback" not in text


@pytest.mark.parametrize(("file_value", "env_value"), [("AWS", None), ("Sandbox", None), ("sandbox", "AWS")])
def test_a_backend_in_capitals_is_the_same_backend_in_the_file_and_the_environment(
    lab_home, monkeypatch, file_value, env_value
):
    _lab_toml(lab_home, file_value)
    if env_value:
        monkeypatch.setenv("LABKIT_BACKEND", env_value)
    assert LabConfig.load().backend == (env_value or file_value).lower()


@pytest.fixture
def aws_without_usable_keys(lab_home, monkeypatch):
    """The aws backend, its endpoint a loopback port that refuses, no instance-metadata lookup, no keys."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", REFUSING_ENDPOINT)
    monkeypatch.setenv("LABKIT_BACKEND", "aws")


@pytest.mark.parametrize("command", [["status"], ["up", "--yes"], ["class", "status"], ["plan"]])
def test_the_aws_backend_without_credentials_says_so_without_a_traceback(aws_without_usable_keys, capsys, command):
    code, text = _run(capsys, *command)
    assert code == 1 and "Traceback" not in text, text
    assert "AWS credentials: no AWS credentials found" in text and "aws configure" in text


def test_half_a_key_pair_is_named(aws_without_usable_keys, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    code, text = _run(capsys, "status")
    assert code == 1 and "Traceback" not in text and "credentials are incomplete" in text, text


@pytest.mark.parametrize("error_code", ["InvalidClientTokenId", "AuthFailure", "SignatureDoesNotMatch", "ExpiredToken"])
def test_keys_aws_refuses_get_the_fix_not_a_traceback(capsys, error_code):
    @handles_errors()
    def refused(args):
        raise ClientError({"Error": {"Code": error_code, "Message": "no such key"}}, "DescribeVpcs")

    assert refused(None) == 1
    text = capsys.readouterr().err
    assert f"AWS credentials: AWS refused the credentials: {error_code}: no such key" in text and "fix:" in text


def test_a_permission_error_is_not_taken_for_bad_keys():
    @handles_errors()
    def denied(args):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DescribeVpcs")

    with pytest.raises(ClientError):
        denied(None)
