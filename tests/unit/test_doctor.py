"""The environment report asks the backend what it needs beyond Python packages, never which backend it is."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labkit.aws.backend import Backend
from labkit.workbook import doctor
from labkit.workbook.doctor import environment_report, program_version

PACKAGE_ROWS = ["python", *doctor.PACKAGES]


class StubBackend(Backend):
    """A backend with no AWS behind it: its account is made up, its needs are the test's."""

    name = "stub"

    def __init__(self, service: list[tuple[str, bool, str]], programs: list[tuple[str, bool, str]]) -> None:
        super().__init__("eu-west-1")
        self.service, self.programs = service, programs
        self.version_of: Callable[..., str | None] | None = None

    def session(self):
        raise AssertionError("the report must not make a client")

    def endpoint_url(self) -> None:
        return None

    def resolve(self, host: str, port: int) -> tuple[str, int]:
        return host, port

    def session_plugin(self) -> None:
        return None

    def account_id(self) -> str:
        return "123456789012"

    def service_checks(self) -> list[tuple[str, bool, str]]:
        return self.service

    def program_checks(self, version_of: Callable[..., str | None]) -> list[tuple[str, bool, str]]:
        self.version_of = version_of
        return self.programs


class Plain(StubBackend):
    """Only the base class's hooks: nothing to run locally, no programs."""

    service_checks = Backend.service_checks
    program_checks = Backend.program_checks


def test_the_backends_rows_come_in_order_around_the_api_check():
    backend = StubBackend([("engine room", True, "humming")], [("gauge", False, "not found: install it")])
    report = environment_report(backend)
    assert list(report.index) == ["backend", "engine room", "AWS API", "gauge", *PACKAGE_ROWS]
    assert report.loc["backend", "detail"] == "stub"
    assert report.loc["AWS API", "detail"] == "account 123456789012, region eu-west-1"
    assert report.loc["gauge", "status"] == "MISSING" and report.loc["engine room", "status"] == "ok"
    assert backend.version_of is program_version


def test_a_service_that_is_down_skips_the_api_check():
    backend = StubBackend([("engine room", False, "not running: start it")], [])
    report = environment_report(backend)
    assert list(report.index) == ["backend", "engine room", *PACKAGE_ROWS]
    assert report.loc["engine room", "status"] == "MISSING"


def test_a_backend_without_local_needs_reports_backend_api_and_packages():
    assert list(environment_report(Plain([], [])).index) == ["backend", "AWS API", *PACKAGE_ROWS]


@pytest.mark.parametrize("program", ["surely-not-a-program-labkit-knows"])
def test_a_missing_program_has_no_version(program):
    assert program_version(program, "--version") is None
    assert program_version("python3", "--version").startswith("Python 3")


def test_the_sandbox_reports_its_server_and_programs(lab_home, monkeypatch):
    from labkit.sandbox.backend import SandboxBackend

    monkeypatch.setenv("LABKIT_MARIADBD", str(lab_home / "no-mariadbd"))
    sandbox = SandboxBackend()
    assert sandbox.service_checks() == [("sandbox", False, "not running: run `labkit.sandbox.up()`")]
    rows = sandbox.program_checks(lambda program, *args: "mariadb 11.4" if program == "mariadb" else None)
    names = ["mariadb server", "mariadb client", "sysbench", "postgresql server", "psql client", "pgbench"]
    assert [row[0] for row in rows] == names  # each engine's server, client and reference benchmark
    assert rows[0][1] is False and "LABKIT_MARIADBD" in rows[0][2]
    missing = "not found: make lab installs it"
    assert rows[1:3] == [("mariadb client", True, "mariadb 11.4"), ("sysbench", False, missing)]
    assert rows[4:] == [("psql client", False, missing), ("pgbench", False, missing)]
