"""Hostile values found by trying every flag, lab.toml field and environment variable (issue 16, item 11): each is
refused before any work, naming the field and the fix, never as a traceback or a silent acceptance."""

from __future__ import annotations

import argparse

import pytest

from labkit.cli import main as cli_main
from labkit.cli.options import output_prefix, positive_number, tcp_port
from labkit.config import LabConfig
from labkit.errors import ConfigError


def _run(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = cli_main.main(list(argv))
    except SystemExit as exit_:  # argparse refuses a bad flag value with exit 2
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp: tmp, "is not a regular file"),  # a directory
        (lambda tmp: "/proc/self/mem", "cannot read"),
        (lambda tmp: _write(tmp / "binary.toml", bytes(range(256))), "is not UTF-8 text"),
        (lambda tmp: _write(tmp / "bom.toml", b"\xef\xbb\xbfreaders = 1\n"), "byte-order mark"),
        (lambda tmp: _write(tmp / "huge.toml", b"# x\n" * 20000), "not a lab config"),
    ],
    ids=["directory", "proc-mem", "binary", "bom", "huge"],
)
def test_a_config_file_that_is_not_a_small_utf8_text_is_refused(tmp_path, capsys, lab_home, make, words):
    path = make(tmp_path)
    with pytest.raises(ConfigError) as refused:
        LabConfig.load(path)
    assert refused.value.field == "config" and words in refused.value.message and refused.value.fix
    code, text = _run(capsys, "plan", "--config", str(path))
    assert code == 2 and "Traceback" not in text and "config" in text and "fix:" in text


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_a_bom_in_the_homes_lab_toml_is_named(lab_home):
    lab_home.mkdir(parents=True, exist_ok=True)
    (lab_home / "lab.toml").write_bytes(b"\xef\xbb\xbfreaders = 1\n")
    with pytest.raises(ConfigError, match="byte-order mark"):
        LabConfig.load()


@pytest.mark.parametrize("version", ["8.0.mysql_aurora.3.\u0660\u0668.0", "8.0.mysql_aurora.3.08.\u0663"])
def test_an_engine_version_with_non_ascii_digits_is_refused(version):
    with pytest.raises(ConfigError) as refused:
        LabConfig(engine_version=version, backend="sandbox")
    assert refused.value.field == "engine_version"


@pytest.mark.parametrize("port", ["0", "-1", "70000", "3306.5", "abc"])
def test_reach_refuses_a_port_out_of_range_while_parsing(capsys, port):
    code, text = _run(capsys, "reach", "instance", "writer", f"--port={port}")
    assert code == 2 and "--port" in text and "1 to 65535" in text and "Traceback" not in text


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-5", "x"])
def test_a_rate_must_be_a_finite_positive_number(value):
    with pytest.raises(argparse.ArgumentTypeError):
        positive_number(value)
    assert positive_number("500") == 500.0


def test_a_save_path_is_checked_before_the_run(tmp_path):
    for bad in ("/proc/nope/x", str(tmp_path / "missing" / "run"), "", str(tmp_path) + "/.."):
        with pytest.raises(argparse.ArgumentTypeError):
            output_prefix(bad)
    assert output_prefix(str(tmp_path / "run1")) == str(tmp_path / "run1")


def test_tcp_port_accepts_the_whole_range():
    assert (tcp_port("1"), tcp_port("3306"), tcp_port("65535")) == (1, 3306, 65535)


def test_ctrl_c_before_a_command_starts_is_one_line(monkeypatch, capsys):
    """Ctrl-C while `labkit up` is still importing its commands: one line and exit 130, not a traceback."""

    def interrupted() -> argparse.ArgumentParser:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "build_parser", interrupted)
    code, text = _run(capsys, "up", "--yes")
    assert code == 130 and text.strip() == "interrupted: nothing was changed"


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1"])
def test_run_notebooks_refuses_a_timeout_that_is_not_a_finite_positive_number(capsys, value):
    code, text = _run(capsys, "run-notebooks", f"--timeout={value}")
    assert code == 2 and "--timeout" in text and "finite number above 0" in text


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 0, -5, True, "900"])
def test_run_notebooks_api_refuses_a_bad_timeout_before_any_work(tmp_path, timeout):
    from labkit.workbook.runner import run_notebooks

    with pytest.raises(ConfigError) as refused:
        run_notebooks(tmp_path, out=tmp_path / "out", timeout=timeout)
    assert refused.value.field == "timeout"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--port=0", "--port=70000", "--remote-port=-1"])
def test_tunnel_ports_are_refused_before_any_call(capsys, flag):
    code, text = _run(capsys, "tunnel", "writer", flag)
    assert code == 2 and "1 to 65535" in text and "Traceback" not in text


@pytest.mark.parametrize("port", [0, -1, 70000, True, "3306"])
def test_can_reach_refuses_a_port_that_is_not_one_before_reading_the_account(port):
    from labkit.security.reach import can_reach

    with pytest.raises(ConfigError) as refused:
        can_reach("instance", "writer", port=port)  # no backend needed: refused first
    assert refused.value.field == "port"
