"""environment_report() checks the aws backend too: credentials, region, the session plugin and its version
(issue 15, item 8). Before, the AWS backend had no checks: a missing or too old plugin showed up only when a
tunnel failed in notebook 04."""

from __future__ import annotations

import os
import stat

import pytest
from moto import mock_aws

from labkit.aws.backend import AwsBackend, plugin_version_check
from labkit.workbook.doctor import environment_report


def fake_plugin(folder, version: str) -> None:
    folder.mkdir(exist_ok=True)
    plugin = folder / "session-manager-plugin"
    plugin.write_text(f"#!/bin/sh\necho {version}\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def aws_report(tmp_path, monkeypatch):
    """The report of the AWS backend (moto in-process answers its one API call), PATH holding only `bin`."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    def report(plugin_version: str | None = None, *, moto: bool = True):
        folder = tmp_path / "bin"
        folder.mkdir(exist_ok=True)
        if plugin_version:
            fake_plugin(folder, plugin_version)
        monkeypatch.setenv("PATH", str(folder))
        if not moto:  # mock_aws would set credentials of its own
            return environment_report(AwsBackend("eu-west-1"))
        with mock_aws():
            return environment_report(AwsBackend("eu-west-1"))

    return report


def test_a_ready_machine_passes_every_aws_row(aws_report):
    report = aws_report("1.2.650.0")
    assert report.loc["backend", "detail"] == "aws"
    assert report.loc["AWS credentials", "status"] == "ok" and "env" in report.loc["AWS credentials", "detail"]
    assert report.loc["AWS region", "detail"] == "eu-west-1"
    assert report.loc["AWS API", "status"] == "ok"
    assert report.loc["session-manager-plugin", "status"] == "ok"
    assert report.loc["session-manager-plugin", "detail"] == "1.2.650.0"


def test_a_missing_plugin_is_reported_with_how_to_install_it(aws_report):
    report = aws_report(None)
    assert report.loc["session-manager-plugin", "status"] == "MISSING"
    assert "not installed" in report.loc["session-manager-plugin", "detail"]
    assert "session-manager-working-with-install-plugin" in report.loc["session-manager-plugin", "detail"]


def test_a_plugin_too_old_for_the_environment_variable_response_is_reported(aws_report):
    report = aws_report("1.2.497.0")
    assert report.loc["session-manager-plugin", "status"] == "MISSING"
    assert "1.2.497.0 is too old" in report.loc["session-manager-plugin", "detail"]


def test_no_credentials_is_reported_before_any_api_call(aws_report, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    report = aws_report("1.2.650.0", moto=False)
    assert report.loc["AWS credentials", "status"] == "MISSING"
    assert "aws configure" in report.loc["AWS credentials", "detail"]
    assert "AWS API" not in report.index, "the API is asked only when the local checks pass"


@pytest.mark.parametrize(
    ("printed", "ok"),
    [("1.2.650.0", True), ("1.2.497.1", True), ("1.2.497.0", False), ("1.1.61.0", False), ("garbled", False)],
)
def test_plugin_versions(printed, ok):
    assert plugin_version_check(printed)[0] is ok
    assert os.sep not in plugin_version_check(printed)[1] or not ok
