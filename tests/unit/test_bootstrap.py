"""The bootstrap installs what it can, and otherwise says exactly what to install and stops."""

from __future__ import annotations

import pytest

from labkit.workbook import bootstrap


def test_nothing_to_do_when_everything_is_installed(monkeypatch):
    monkeypatch.setattr(bootstrap.shutil, "which", lambda name, path=None: f"/usr/bin/{name}")
    assert bootstrap.main() == 0


def test_macos_gets_the_brew_command_and_a_failing_exit(monkeypatch, capsys):
    monkeypatch.setattr(bootstrap.shutil, "which", lambda name, path=None: None)
    monkeypatch.setattr(bootstrap.platform, "system", lambda: "Darwin")
    monkeypatch.delenv("LABKIT_MARIADBD", raising=False)
    assert bootstrap.main() == 1
    err = capsys.readouterr().err
    assert "brew install mariadb sysbench" in err and "mariadbd" in err and "LABKIT_MARIADBD" in err


def test_debian_without_root_or_sudo_gets_the_apt_command(monkeypatch, capsys):
    monkeypatch.setattr(
        bootstrap.shutil, "which", lambda name, path=None: "/usr/bin/apt-get" if name == "apt-get" else None
    )
    monkeypatch.setattr(bootstrap.platform, "system", lambda: "Linux")
    monkeypatch.setattr(bootstrap, "_sudo_prefix", lambda: None)
    monkeypatch.delenv("LABKIT_MARIADBD", raising=False)
    assert bootstrap.main() == 1
    assert (
        "sudo apt-get install mariadb-client mariadb-server postgresql postgresql-client sysbench"
        in capsys.readouterr().err
    )


def test_labkit_mariadbd_stands_in_for_the_server(monkeypatch):
    monkeypatch.setenv("LABKIT_MARIADBD", "/opt/mariadb/bin/mariadbd")
    monkeypatch.setattr(bootstrap.shutil, "which", lambda name, path=None: None if name == "mariadbd" else "/x")
    assert bootstrap.missing_programs() == []


def test_labkit_postgres_stands_in_for_its_server(monkeypatch):
    monkeypatch.setenv("LABKIT_POSTGRES", "/usr/lib/postgresql/15/bin/postgres")
    monkeypatch.setattr(bootstrap.shutil, "which", lambda name, path=None: None if name == "postgres" else "/x")
    assert bootstrap.missing_programs() == []


@pytest.mark.parametrize("name", ["mariadb", "sysbench", "psql", "pgbench"])
def test_each_missing_program_is_named(monkeypatch, name):
    monkeypatch.delenv("LABKIT_MARIADBD", raising=False)
    monkeypatch.setattr(bootstrap.shutil, "which", lambda n, path=None: None if n == name else "/x")
    assert bootstrap.missing_programs() == [name]


def test_browser_adds_chromium_for_the_web_app_test(monkeypatch, capsys):
    monkeypatch.setattr(bootstrap.shutil, "which", lambda n, path=None: None if n in ("chromium", "apt-get") else "/x")
    monkeypatch.delenv("LABKIT_CHROMIUM", raising=False)
    assert bootstrap.missing_programs() == [] and bootstrap.missing_programs(browser=True) == ["chromium"]
    monkeypatch.setattr(bootstrap.platform, "system", lambda: "Darwin")
    assert bootstrap.main(["--browser"]) == 1
    assert "chromium" in capsys.readouterr().err
    monkeypatch.setenv("LABKIT_CHROMIUM", "/opt/chrome/chrome")
    assert bootstrap.main(["--browser"]) == 0
