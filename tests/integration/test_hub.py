"""A class on one JupyterHub (#24): the hub on loopback, two learner accounts, their servers started through the
hub's REST API, 00_setup to 02_database run in each learner's own kernel, and the isolation between them: two
sandboxes on two ports, each `labkit status` sees its own lab, B's signed request to A's sandbox is refused, B
cannot read A's home or log into A's database, B's `labkit sandbox down` leaves A's lab answering, and a stopped
server (and a stopped hub) leaves no process of its learner behind.

Needs root (system accounts, a hub that runs servers as them) and the hub's venv (`make hub-setup`, which the
fixture runs: it is quick once the venv exists)."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from support.hub_kernels import HubApi, LearnerKernel
from support.local_users import require_root

from labkit.hub import accounts
from labkit.hub.cleanup import processes_of
from labkit.hub.launch import HubClient, free_port
from labkit.hub.setup import hub_python
from labkit.sandbox.processes import port_in_use

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["00_setup.ipynb", "01_network.ipynb", "02_database.ipynb"]
FIGURES = REPO / "test-artifacts" / "hub-figures.json"  # what the run measured (capacity, times)


FOREIGN_SANDBOX = """
import json, boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from labkit.home import labkit_home
from labkit.sandbox.signing import home_credentials
session = boto3.Session(**home_credentials(labkit_home()).for_boto3())  # the learner's own, valid key pair
seen = {{}}
for service, call in (("rds", "describe_db_clusters"), ("secretsmanager", "list_secrets")):
    client = session.client(service, endpoint_url="{endpoint}", region_name="us-east-1", config=Config(retries={{"max_attempts": 1}}))
    try:
        getattr(client, call)()
        seen[service] = "ANSWERED"
    except ClientError as exc:
        seen[service] = exc.response["Error"]["Code"]
print(json.dumps(seen))
"""
FOREIGN_HOME = """
import json, os
seen = {{}}
for label, path in (("home", "{home}"), ("credentials", "{home}/.labkit/sandbox.credentials")):
    try:
        os.listdir(path) if label == "home" else open(path).read()
        seen[label] = "READ"
    except PermissionError:
        seen[label] = "denied"
print(json.dumps(seen))
"""
FOREIGN_DATABASE = """
import json, pymysql
try:
    pymysql.connect(host="127.0.0.1", port={port}, user="admin", password="", connect_timeout=5).close()
    print(json.dumps("CONNECTED"))
except pymysql.err.OperationalError as exc:
    print(json.dumps(exc.args[0]))
"""


def _labkit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit.cli.main", *args], env=env, capture_output=True, text=True)


def _rss_mb(uid: int) -> float:
    """Resident memory of every process of `uid`, in MB (shared pages counted in each: an upper bound)."""
    total = 0
    for pid in processes_of(uid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root(__file__)
    done = subprocess.run([sys.executable, "-m", "labkit.hub.setup"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    state = tmp_path_factory.mktemp("hub-state")
    port = free_port(0)
    log = (state / "hub.log").open("w")
    started = time.monotonic()
    launcher = subprocess.Popen(
        [str(hub_python()), "-m", "labkit.hub.launch", "--state-dir", str(state), "--port", str(port),
         "--hub-port", "0", "--proxy-api-port", "0"],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    client = None
    while time.monotonic() - started < 120 and client is None:
        assert launcher.poll() is None, (state / "hub.log").read_text()[-3000:]
        client = HubClient.running(state)
        time.sleep(0.2)
    assert client is not None, (state / "hub.log").read_text()[-3000:]
    figures = {"hub_start_seconds": round(time.monotonic() - started, 1)}
    names = [f"lk{secrets.token_hex(2)}a", f"lk{secrets.token_hex(2)}b"]
    passwords = tmp_path_factory.mktemp("passwords")
    env = {**os.environ, "LABKIT_HOME": str(tmp_path_factory.mktemp("instructor-home"))}
    created = _labkit("class", "hub-learners", "create", "--names", ",".join(names), "--yes", "--dir", str(passwords),
                      "--hub-state", str(state), env=env)  # fmt: skip
    try:
        assert created.returncode == 0, created.stdout + created.stderr
        yield {"client": client, "api": HubApi(client.public_url, client.token), "names": names,
               "passwords": passwords, "launcher": launcher, "state": state, "env": env, "figures": figures,
               "hub_pid": int((state / "jupyterhub.pid").read_text())}  # fmt: skip
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGTERM)
            launcher.wait(timeout=120)
        deleted = _labkit("class", "hub-learners", "delete", "--names", ",".join(names), "--yes", "--dir",
                          str(passwords), "--hub-state", str(state), env=env)  # fmt: skip
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.write_text(json.dumps(figures, indent=2))
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert not any(accounts.is_learner(n) for n in names)


def _sign_in(public_url: str, name: str, password: str) -> int:
    """The hub's login form, as a browser posts it (with the _xsrf cookie it sets); the status code answered."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # the 302 itself is the answer
            return None

    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())
    opener.open(f"{public_url}hub/login", timeout=30).read()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": xsrf}).encode()
    try:
        return opener.open(f"{public_url}hub/login", data=form, timeout=30).status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_class_on_one_hub(hub):
    api, names, figures = hub["api"], hub["names"], hub["figures"]
    a, b = names
    homes = {n: Path(pwd.getpwnam(n).pw_dir) for n in names}
    uids = {n: pwd.getpwnam(n).pw_uid for n in names}

    # Sign-in: the account's password lets the learner in; a wrong one does not.
    password = (hub["passwords"] / f"{a}.txt").read_text().split("password: ")[1].split()[0]
    assert _sign_in(hub["client"].public_url, a, password) == 302
    assert _sign_in(hub["client"].public_url, a, password + "x") == 403

    # Servers through the REST API, as their own accounts, both asked for at once (as a class arrives); their
    # notebooks released into their own homes.
    def start(name: str) -> float:  # the POST itself waits up to the hub's slow_spawn_timeout: one thread each
        started = time.monotonic()
        api.call("POST", f"/hub/api/users/{name}/server")
        api.wait_ready(name)
        return time.monotonic() - started

    with ThreadPoolExecutor(2) as pool:
        for name, seconds in zip(names, pool.map(start, names), strict=True):
            figures[f"server_start_to_ready_seconds_{name[-1]}"] = round(seconds, 1)
    kernels = {n: LearnerKernel(api, n, api.user_token(n)) for n in names}
    for name, kernel in kernels.items():
        who = kernel.value(
            "[__import__('os').getuid(), __import__('os').environ['LABKIT_HOME'], __import__('os').getcwd()]"
        )
        assert who == [uids[name], f"{homes[name]}/.labkit", f"{homes[name]}/.labkit/notebooks"]
        assert (homes[name] / ".labkit" / "notebooks" / "00_setup.ipynb").stat().st_uid == uids[name]
    figures["learner_server_rss_mb_before_sandbox"] = _rss_mb(uids[a])

    # 00_setup to 02_database in each learner's kernel, both at once.
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(lambda k: [k.run_notebook(REPO / "notebooks" / nb) for nb in NOTEBOOKS], k)
            for k in kernels.values()
        ]
        for run in runs:
            run.result()
    figures["notebooks_00_to_02_both_learners_seconds"] = round(time.monotonic() - started, 1)
    figures["learner_rss_mb_with_lab"] = _rss_mb(uids[a])

    # Two sandboxes, two ports, two homes.
    status = {
        n: k.value("{k: v for k, v in __import__('labkit').sandbox.status().items() if k != 'instances'}")
        for n, k in kernels.items()
    }
    assert status[a]["running"] and status[b]["running"]
    assert status[a]["endpoint_url"] != status[b]["endpoint_url"] and status[a]["daemon_pid"] != status[b]["daemon_pid"]
    assert status[a]["home"] == f"{homes[a]}/.labkit" and status[b]["home"] == f"{homes[b]}/.labkit"

    # Each learner's `labkit status` sees their own lab only.
    vpcs = {
        n: k.value(
            "[v['VpcId'] for v in __import__('labkit.sandbox.backend', fromlist=['x']).SandboxBackend().client('ec2').describe_vpcs()['Vpcs'] if not v['IsDefault']]"
        )
        for n, k in kernels.items()
    }
    for name, kernel in kernels.items():
        shown = kernel.run(
            "import subprocess; print(subprocess.run(['labkit', 'status', '--json'], capture_output=True, text=True).stdout)"
        )
        text = "".join(shown.outputs)
        other = b if name == a else a
        assert vpcs[name] and all(v in text for v in vpcs[name]), text
        assert not any(v in text for v in vpcs[other]), text

    # B, with B's own (valid) key, signs a request to A's sandbox: refused as AWS refuses it.
    refused = kernels[b].json(FOREIGN_SANDBOX.format(endpoint=status[a]["endpoint_url"]))
    assert refused == {"rds": "InvalidClientTokenId", "secretsmanager": "UnrecognizedClientException"}, refused

    # B cannot read A's home, nor log into A's writer (no password).
    assert kernels[b].json(FOREIGN_HOME.format(home=homes[a])) == {"home": "denied", "credentials": "denied"}
    writer_port = kernels[a].value(
        "[i['port'] for i in __import__('labkit').sandbox.status()['instances'].values() if i['role'] == 'writer'][0]"
    )
    assert kernels[b].json(FOREIGN_DATABASE.format(port=writer_port)) in (1045, 1698)

    # B's `labkit sandbox down` stops B's sandbox only: A's lab still answers.
    down = kernels[b].run(
        "import subprocess; r = subprocess.run(['labkit', 'sandbox', 'down'], capture_output=True, text=True); print(r.returncode)"
    )
    assert "".join(down.outputs).strip() == "0", down
    assert not kernels[b].value("__import__('labkit').sandbox.status()['running']")
    assert (
        kernels[a].value(
            "len(__import__('labkit.sandbox.backend', fromlist=['x']).SandboxBackend().client('rds').describe_db_clusters()['DBClusters'])"
        )
        == 1
    )
    for kernel in kernels.values():
        kernel.close()

    # Stopping A's server stops A's sandbox and every process of A's; nothing listens on A's ports.
    started = time.monotonic()
    api.call("DELETE", f"/hub/api/users/{a}/server")
    api.wait_stopped(a)
    figures["server_stop_seconds"] = round(time.monotonic() - started, 1)
    assert processes_of(uids[a]) == []
    assert not port_in_use(int(status[a]["endpoint_url"].rsplit(":", 1)[1])) and not port_in_use(writer_port)
    assert (homes[a] / ".labkit" / "data").is_dir()  # the lab is kept for next time

    # Stopping the hub stops B's server with it: no process of B's, no hub, no proxy.
    figures["hub_rss_mb"] = _process_rss_mb(hub["hub_pid"])
    hub["launcher"].send_signal(signal.SIGTERM)
    assert hub["launcher"].wait(timeout=120) == 0
    assert processes_of(uids[b]) == []
    assert not port_in_use(int(hub["client"].public_url.rsplit(":", 1)[1].strip("/")))


def _process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0
