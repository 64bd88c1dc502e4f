"""Safe exports (issue #14, item 6): `eval "$(labkit sandbox env)"` runs nothing but exports, and LABKIT_BACKEND
chooses the backend when neither a flag nor a config file names one.

No sandbox is started here: `up` must refuse a bad region before it starts anything (starting is replaced by a
failure), and `env` reads a hand-written state file whose daemon pid is this test process.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit.aws.backend import AwsBackend, get_backend
from labkit.cli.main import build_parser, main
from labkit.cli.options import config_from_args
from labkit.cli.sandbox import export_lines
from labkit.config import LabConfig
from labkit.errors import ConfigError, LabkitError
from labkit.sandbox import control
from labkit.sandbox.state import DAEMON_MODULE, SandboxState, write_state

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="needs bash")


def hostile_regions(marker: Path) -> list[str]:
    return [
        f"us-east-1$(touch {marker})",
        f"us-east-1`touch {marker}`",
        f"us-east-1'; touch {marker}; echo '",
        f"us-east-1\ntouch {marker}",
    ]


def fake_running_sandbox(home: Path, region: str = "us-east-1") -> SandboxState:
    """A state file that `require_running` accepts: ready, and its daemon pid alive with the daemon's command line
    for this home (a sleeping stand-in: what is tested is the state file's values, not the daemon)."""
    home.mkdir(parents=True, exist_ok=True)
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", DAEMON_MODULE, "--home", str(home.resolve())]
    )
    atexit.register(stand_in.kill)
    state = SandboxState(
        daemon_pid=stand_in.pid, endpoint_url="http://127.0.0.1:45678", port=45678, region=region, home=str(home),
        log_file=str(home / "sandbox.log"), started_at=time.time(), ready=True,
    )  # fmt: skip
    write_state(state, home)
    return state


def labkit_cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit.cli.main", *argv], capture_output=True, text=True, env=env)


def eval_in_bash(script_output: str, *names: str) -> list[str]:
    """Eval `script_output` in bash, then print each variable's value, NUL-separated (values may hold newlines)."""
    printf = "printf '%s\\0'" + "".join(f' "${name}"' for name in names)
    done = subprocess.run([BASH, "-c", f'eval "$1"; {printf}', "bash", script_output], capture_output=True, check=True)
    return done.stdout.decode().split("\0")[:-1]


# ---- the region: refused where it enters ---------------------------------------------------------


@pytest.fixture
def no_start(monkeypatch):
    """Make starting the daemon (or anything before it) fail the test: a bad region is refused first."""

    def started(*args, **kwargs):
        raise AssertionError(f"the sandbox was started with {args!r}")

    monkeypatch.setattr(control, "check_installed", lambda: None)
    monkeypatch.setattr(control.subprocess, "Popen", started)


def test_up_refuses_a_hostile_region_from_the_environment(lab_home, tmp_path, monkeypatch, no_start):
    marker = tmp_path / "pwned"
    for region in hostile_regions(marker):
        monkeypatch.setenv("AWS_DEFAULT_REGION", region)
        with pytest.raises(ConfigError) as error:
            control.up(quiet=True)
        assert error.value.field == "AWS_DEFAULT_REGION"
        assert "not an AWS region" in str(error.value) and "fix:" in str(error.value)
    assert not (lab_home / "sandbox.json").exists() and not marker.exists()


def test_up_refuses_a_hostile_region_argument(lab_home, tmp_path, no_start):
    for region in hostile_regions(tmp_path / "pwned"):
        with pytest.raises(ConfigError) as error:
            control.up(region=region, quiet=True)
        assert error.value.field == "region"


def test_cli_up_with_a_hostile_region_says_what_and_how_without_a_traceback(tmp_path):
    marker = tmp_path / "pwned"
    env = dict(os.environ, LABKIT_HOME=str(tmp_path / "home"), AWS_DEFAULT_REGION=f"us-east-1$(touch {marker})")
    result = labkit_cli("sandbox", "up", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert "AWS_DEFAULT_REGION" in result.stderr and "fix:" in result.stderr
    assert not (tmp_path / "home" / "sandbox.json").exists() and not marker.exists()


def test_up_still_accepts_a_real_region_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", " eu-west-1 ")
    assert control._region_to_start(None) == "eu-west-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert control._region_to_start(None) == "us-east-1"


# ---- the exports: checked, then quoted where they are printed ------------------------------------


@needs_bash
def test_a_hostile_recorded_region_never_reaches_the_printed_exports(tmp_path):
    """A state file written before this fix (or by hand) holds the hostile region: `env` refuses it."""
    marker = tmp_path / "pwned"
    for index, region in enumerate(hostile_regions(marker)):
        home = tmp_path / f"home{index}"
        fake_running_sandbox(home, region=region)
        env = dict(os.environ, LABKIT_HOME=str(home))
        result = labkit_cli("sandbox", "env", env=env)
        assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
        assert "region" in result.stderr and "labkit sandbox down" in result.stderr
        subprocess.run([BASH, "-c", 'eval "$1"', "bash", result.stdout], check=True)
        assert not marker.exists()


@needs_bash
def test_a_hostile_region_flag_is_refused_by_env(tmp_path, lab_home, capsys):
    fake_running_sandbox(lab_home)
    marker = tmp_path / "pwned"
    for region in hostile_regions(marker):
        assert main(["sandbox", "env", "--region", region]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and "is not an AWS region" in captured.err
    assert not marker.exists()


@needs_bash
def test_env_output_round_trips_through_bash_eval(lab_home, capsys):
    fake_running_sandbox(lab_home, region="ap-southeast-2")
    assert main(["sandbox", "env"]) == 0
    output = capsys.readouterr().out
    expected = control.env_exports()
    assert expected["AWS_REGION"] == "ap-southeast-2"
    assert eval_in_bash(output, *expected) == list(expected.values())


@needs_bash
def test_printed_values_are_shell_quoted(tmp_path):
    """Whatever a value holds, the shell sees it as data: the printing step quotes every value."""
    marker = tmp_path / "pwned"
    values = {
        "A": f"$(touch {marker})",
        "B": f"`touch {marker}`",
        "C": 'it\'s "quoted" \\ $HOME *',
        "D": "two\nlines",
        "E": "",
    }
    output = "\n".join(export_lines(values))
    assert eval_in_bash(output, *values) == list(values.values())
    assert not marker.exists()


def test_export_names_are_checked():
    with pytest.raises(LabkitError):
        export_lines({"A=$(id)": "x"})


def test_a_recorded_endpoint_that_is_not_loopback_http_is_refused(lab_home):
    state = fake_running_sandbox(lab_home)
    for endpoint in ("http://127.0.0.1:1$(id)", "https://example.com", "http://10.0.0.1:4566"):
        data = {**state.to_json(), "endpoint_url": endpoint}
        (lab_home / "sandbox.json").write_text(json.dumps(data))
        with pytest.raises(LabkitError) as error:
            control.env_exports()
        assert "endpoint" in str(error.value.field)


# ---- LABKIT_BACKEND: chooses the backend when neither a flag nor a config file names one ----------


@pytest.fixture
def aws_env(lab_home, monkeypatch):
    """LABKIT_BACKEND=aws with fake credentials; nothing here makes an AWS call."""
    monkeypatch.setenv("LABKIT_BACKEND", "aws")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return lab_home


def test_labkit_backend_chooses_the_config_backend(aws_env):
    assert LabConfig().backend == "aws"
    assert LabConfig.load().backend == "aws"  # no lab.toml in the home
    backend = LabConfig().make_backend()
    assert isinstance(backend, AwsBackend) and backend.region == "us-east-1"


def test_labkit_backend_chooses_the_cli_backend(aws_env):
    args = build_parser().parse_args(["plan", "--json"])
    assert config_from_args(args).backend == "aws"


def test_labkit_backend_chooses_the_run_notebooks_backend(aws_env, monkeypatch, capsys):
    import labkit

    chosen = {}

    class Summary:
        ok = True

        def __str__(self) -> str:
            return "ran"

    def fake_run(notebooks, **kwargs):
        chosen.update(kwargs)
        return Summary()

    monkeypatch.setattr(labkit, "run_notebooks", fake_run)
    assert main(["run-notebooks"]) == 0
    assert chosen["backend"] == "aws" and "against your AWS account" in capsys.readouterr().out
    assert main(["run-notebooks", "--backend", "sandbox"]) == 0
    assert chosen["backend"] == "sandbox"


def test_a_flag_wins_over_labkit_backend_which_wins_over_the_config_file(aws_env):
    """Issue 27: the environment over a file (the usual rule); a file that won made LABKIT_BACKEND silently ignored
    once notebook 00 saved a lab.toml."""
    args = build_parser().parse_args(["plan", "--backend", "sandbox"])
    assert config_from_args(args).backend == "sandbox"
    LabConfig(backend="sandbox").save()
    assert LabConfig.load().backend == "aws"
    assert config_from_args(build_parser().parse_args(["plan"])).backend == "aws"
    assert config_from_args(build_parser().parse_args(["plan", "--backend", "sandbox"])).backend == "sandbox"


def test_without_labkit_backend_the_sandbox_is_the_default(lab_home, monkeypatch):
    monkeypatch.delenv("LABKIT_BACKEND", raising=False)
    assert LabConfig().backend == "sandbox"
    monkeypatch.setenv("LABKIT_BACKEND", "  ")
    assert LabConfig().backend == "sandbox"
    monkeypatch.setenv("LABKIT_BACKEND", " AWS ")
    assert LabConfig().backend == "aws"


@pytest.mark.parametrize("value", ["awz", "gcp", "sandbox; rm -rf ~"])
def test_an_invalid_labkit_backend_names_the_variable_and_the_fix(lab_home, monkeypatch, value):
    monkeypatch.setenv("LABKIT_BACKEND", value)
    for make in (LabConfig, LabConfig.load, get_backend):
        with pytest.raises(ConfigError) as error:
            make()
        assert error.value.field == "LABKIT_BACKEND"
        assert "LABKIT_BACKEND=sandbox" in error.value.fix and "unset it" in error.value.fix


def test_cli_with_an_invalid_labkit_backend_exits_2_with_the_fix(tmp_path):
    env = dict(os.environ, LABKIT_HOME=str(tmp_path / "home"), LABKIT_BACKEND="awz")
    result = labkit_cli("plan", "--json", env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert "LABKIT_BACKEND" in result.stderr and "fix:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("target", ["../../x", "writer/../../etc", "..", "a b", "writer;rm", ".hidden", "x" * 300])
def test_a_tunnel_target_that_is_not_a_host_name_is_refused_before_any_call(target):
    from labkit.access.tunnel.target import validate_to

    with pytest.raises(ConfigError) as refused:
        validate_to(target, None)
    assert refused.value.field == "to"


def test_an_option_file_stays_in_the_home_whatever_the_target_is_called(tmp_path):
    from types import SimpleNamespace

    from labkit.cli.sql import option_file

    backend = SimpleNamespace(trust_store=lambda: "/home/ca.pem")
    tunnel = SimpleNamespace(to="../../escaped", port=13306, host="127.0.0.1", backend=backend,
                             target=SimpleNamespace(host="escaped.cluster-abc.us-east-1.rds.amazonaws.com"))  # fmt: skip
    secret = SimpleNamespace(username="admin", password="not-shown")
    path = option_file(tmp_path, tunnel, secret, "shop")
    assert path.resolve().parent == (tmp_path / "tunnels").resolve()
    assert not (tmp_path.parent / "escaped-13306.cnf").exists()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
