"""`make lab`: start the sandbox, then JupyterLab on loopback, for root too, and print the link with its token.

JupyterLab opens the learner's copies of the notebooks (labkit.workbook.release: each exercise's solution replaced
by a "your turn" placeholder), made in the labkit home where missing and never overwritten, so the learner's work
survives the next `make lab`; `--notebook-dir` opens another folder as it is (the solved notebooks, for authors).

JupyterLab refuses to start as root without `--allow-root`, and containers, cloud VMs and CI machines run as
root; the server listens on 127.0.0.1 only (its token is the only lock, so no other machine may knock). The
token is generated here and handed over in the environment (JUPYTER_TOKEN), never on the command line, where
`ps` would show it. The venv's `bin` goes first on PATH, so a hint that says `labkit ...` works in a notebook's
`!` cell and in a JupyterLab terminal. When JupyterLab fails to start, a sandbox this launcher started is stopped
again, so a failed `make lab` leaves nothing running.

JupyterLab runs a *login* shell in its terminals when its own output is not a terminal (jupyter_server_terminals),
and a login shell reads /etc/profile, which resets PATH (Debian does, for root): `labkit` was not found there.
The launcher's config (written to the LABKIT home) gives terminals a shell that reads what a login shell reads
and then puts the venv's `bin` first again; it also turns off JupyterLab's news prompt, which covered the
notebook. A second `make lab` finds the JupyterLab already serving these notebooks and prints its link.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
PREFERRED_PORT = 8888  # JupyterLab's usual port, when it is free
# JupyterLab settings every session of the lab starts with: no "fetch official news?" prompt, no update check
# (both ask a website, and the prompt covered the notebook); no URL in an output turned into a link (the lab's
# URLs are loopback addresses of a sandbox or a tunnel: in a saved output they lead nowhere).
SETTINGS_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/apputils-extension:sanitizer": {"autolink": False},
}
TERMINAL_RC = """\
# labkit: the shell of JupyterLab's terminals (written by labkit/workbook/lab.py; rewritten at each `make lab`).
# It reads what a login shell reads, then puts the lab's virtualenv first on PATH again: /etc/profile resets
# PATH, and the `labkit ...` commands the notebooks suggest must be found.
[ -r /etc/profile ] && . /etc/profile
for profile in ~/.bash_profile ~/.bash_login ~/.profile; do
  if [ -r "$profile" ]; then . "$profile"; break; fi
done
export PATH={venv_bin}:"$PATH"
"""


def free_port(preferred: int = PREFERRED_PORT) -> int:
    """`preferred` when nothing listens on it on loopback, else a free port the kernel picks."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")  # pragma: no cover - port 0 always binds


def lab_command(
    notebook_dir: str | Path,
    port: int,
    *,
    euid: int | None = None,
    open_browser: bool = True,
    config_file: Path | None = None,
) -> list[str]:
    """The `jupyter lab` command line: loopback only, a fixed port, `--allow-root` when run as root, and the
    lab's own config file (`jupyter_config`) when given."""
    euid = os.geteuid() if euid is None else euid
    command = [
        str(Path(sys.executable).with_name("jupyter")),
        "lab",
        f"--notebook-dir={notebook_dir}",
        f"--ServerApp.ip={LOOPBACK}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # the printed link must be the port it listens on
    ]
    if config_file is not None:
        command.append(f"--config={config_file}")
    if euid == 0:
        command.append("--allow-root")
    if not open_browser:
        command.append("--no-browser")
    return command


def lab_environment(base: Mapping[str, str], token: str) -> dict[str, str]:
    """The server's environment (kernels and terminals inherit it): the venv's bin first on PATH, the token."""
    env = dict(base)
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env["PATH"] = os.pathsep.join([venv_bin, *path])
    env["JUPYTER_TOKEN"] = token
    return env


def lab_url(port: int, token: str) -> str:
    return f"http://{LOOPBACK}:{port}/lab?token={token}"


def terminal_shell(rc_file: Path) -> list[str] | None:
    """The terminals' shell: bash reading `rc_file` (None without bash: JupyterLab's own choice stands)."""
    bash = shutil.which("bash")
    return [bash, "--rcfile", str(rc_file), "-i"] if bash else None


def jupyter_config(home: Path) -> Path:
    """Write the lab's JupyterLab config under `home` (the terminals' shell and its rc file, the settings
    overrides) and return the config file for `jupyter lab --config`."""
    folder = home / "jupyterlab"
    settings = folder / "settings"
    settings.mkdir(parents=True, exist_ok=True)
    rc_file = folder / "terminal-rc.sh"
    rc_file.write_text(TERMINAL_RC.format(venv_bin=shlex.quote(str(Path(sys.executable).parent))))
    (settings / "overrides.json").write_text(json.dumps(SETTINGS_OVERRIDES, indent=2) + "\n")
    config: dict[str, Any] = {"LabApp": {"app_settings_dir": str(settings), "news_url": None}}
    shell = terminal_shell(rc_file)
    if shell is not None:
        config["ServerApp"] = {"terminado_settings": {"shell_command": shell}}
    path = folder / "jupyter_lab_config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def running_lab(notebook_dir: str | Path, runtime_dir: str | None = None) -> str | None:
    """The link of a JupyterLab already serving `notebook_dir` on loopback (None when there is none)."""
    from jupyter_server.serverapp import list_running_servers  # the venv's JupyterLab: only the launcher asks

    wanted = Path(notebook_dir).resolve()
    for info in list_running_servers(runtime_dir):
        if Path(info.get("root_dir", "")).resolve() == wanted and info.get("hostname") in (LOOPBACK, "localhost"):
            return lab_url(int(info["port"]), info.get("token", ""))
    return None


def launch(notebook_dir: str | Path, *, open_browser: bool = True) -> int:
    """Start the sandbox (or reuse it), run JupyterLab until it stops, and return its exit code."""
    from labkit import sandbox  # the client side of the sandbox: boto3 is only loaded here
    from labkit.home import labkit_home

    was_running = bool(sandbox.status().get("running"))
    state = sandbox.up(quiet=True)
    print(f"sandbox: AWS API at {state.endpoint_url}", flush=True)
    already = running_lab(notebook_dir)
    if already is not None:  # one JupyterLab per workbook: a second one would land on another port
        print(f"JupyterLab is already running for {notebook_dir}: {already}", flush=True)
        return 0
    port, token = free_port(), secrets.token_urlsafe(24)
    command = lab_command(notebook_dir, port, open_browser=open_browser, config_file=jupyter_config(labkit_home()))
    print(f"JupyterLab (stop it with Ctrl-C twice): {lab_url(port, token)}", flush=True)
    # Ctrl-C reaches JupyterLab too (one process group): it asks, then shuts its kernels down; this process
    # only waits for it, so it never kills the server halfway.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = subprocess.Popen(command, env=lab_environment(os.environ, token)).wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    if code != 0 and not was_running:
        sandbox.down(quiet=True)
        print(f"JupyterLab exited with code {code}; the sandbox this started is stopped again", file=sys.stderr)
    return code


def learner_notebooks() -> Path:
    """The learner's copies of the workbook (solutions taken out), made where missing, never overwritten."""
    from labkit.workbook.release import release_notebooks  # nbformat: only when copies are made

    release = release_notebooks()
    print(release, flush=True)
    return release.out


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m labkit.workbook.lab [--notebook-dir DIR] [--no-browser]` (what `make lab` runs): without a
    folder, JupyterLab opens the learner's copies of the notebooks in the labkit home."""
    from labkit.errors import LabkitError  # as in launch: labkit's modules load where they are used

    parser = argparse.ArgumentParser(prog="python -m labkit.workbook.lab", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--notebook-dir", default=None, help="the folder JupyterLab opens (default: your copies of the notebooks)"
    )
    parser.add_argument("--no-browser", action="store_true", help="only print the link")
    args = parser.parse_args(argv)
    if args.notebook_dir is not None and not Path(args.notebook_dir).is_dir():
        print(
            f"error: notebook-dir: {args.notebook_dir} is not a folder\n  fix: run it from the repository",
            file=sys.stderr,
        )
        return 2
    try:
        folder = args.notebook_dir if args.notebook_dir is not None else learner_notebooks()
        return launch(folder, open_browser=not args.no_browser)
    except LabkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
