"""The failover lab's AWS path without AWS: what is shipped to the instance, what comes back, what is refused.

The whole path runs against a sandbox lab in tests/integration/test_failover_lab_remote.py.
"""

from __future__ import annotations

import ast
import base64
import io
import random
import subprocess
import sys
import tarfile
import time

import pytest

from labkit.errors import ConfigError
from labkit.failover_lab import remote
from labkit.failover_lab.app import ERROR_KINDS
from labkit.failover_lab.onhost import MARKER, MAX_ERROR_TEXTS, OUTPUT_LIMIT, START_MARGIN, pack, unpack
from labkit.failover_lab.run import DEFAULT_STRATEGIES

BASE = 1_700_000_000_000_000_000


def _run(strategies: tuple[str, ...], seconds: float, interval: float, call_s: float, seed: int = 1) -> dict:
    """A synthetic run as loops.py records it, as hard to pack as a real one gets: jittered times, a third of the
    writes failed with every kind and more distinct messages than are kept, every write read on a reader."""
    rng = random.Random(seed)
    samples, seen = [], {}
    for slot, strategy in enumerate(strategies):
        sent = rng.random() * interval
        for k in range(int(seconds / interval)):
            failed = rng.random() < 0.35
            done = sent + rng.uniform(0.0005, 0.05)
            probe = BASE + (slot + 1) * 10**8 + k
            samples.append({"strategy": strategy, "probe": probe, "sent_s": sent, "done_s": done,
                            "acked_s": float("nan") if failed else done, "acknowledged": not failed,
                            "served_by": None if failed else rng.choice(["lab-writer", "lab-reader-1"]),
                            "error_kind": rng.choice(ERROR_KINDS) if failed else None,
                            "error": f"OperationalError: (2013, 'Lost connection {rng.randrange(200)}')" if failed else None})  # fmt: skip
            if not failed:
                seen[probe] = (done + rng.uniform(0.01, 0.4), rng.choice(["lab-writer", "lab-reader-1"]))
            sent = done + interval + rng.uniform(0, 0.003)
    return {"samples": samples, "seen": seen, "epoch": 1.7e9, "call_s": call_s, "writer_after": "lab-reader-1",
            "base": BASE, "acknowledged": sum(s["acknowledged"] for s in samples), "lost": [],
            "meta": {"python": "3.9.23", "pymysql": "1.1.1", "host": "ip-10-42-1-17"}}  # fmt: skip


def test_pack_and_unpack_keep_every_sample_to_the_millisecond():
    result = _run(("naive", "pool"), 3.0, 0.1, call_s=1.0)
    back = unpack(pack(result))
    assert len(back["samples"]) == len(result["samples"]) and back["writer_after"] == "lab-reader-1"
    for was, now in zip(result["samples"], back["samples"], strict=True):
        assert now["probe"] == was["probe"] and now["acknowledged"] == was["acknowledged"]
        assert abs(now["sent_s"] - was["sent_s"]) <= 0.0005 and abs(now["done_s"] - was["done_s"]) <= 0.001
        assert (now["served_by"], now["error_kind"]) == (was["served_by"], was["error_kind"])
    kept = {s["probe"] for s in result["samples"] if s["sent_s"] >= result["call_s"] - 2.0}
    assert set(back["seen"]) == set(result["seen"]) & kept, "reads of writes sent long before the failure stay"
    assert len({s["error"] for s in back["samples"] if s["error"]}) <= MAX_ERROR_TEXTS + len(ERROR_KINDS)


def _longest_after(strategies: tuple[str, ...], interval: float, baseline: float = 1.0) -> float:
    after = 3.0
    while after < 300:  # the longest the CLI accepts
        try:
            remote.check_size(strategies, baseline, after + 1, interval)
        except ConfigError:
            return after
        after += 1
    return after


@pytest.mark.parametrize("interval", [0.1, 0.5])
def test_the_longest_run_the_check_accepts_fits_run_commands_output(interval):
    after = _longest_after(DEFAULT_STRATEGIES, interval)
    assert after >= 30, "a real failover takes up to about 35 s: the default strategies must see one end"
    result = _run(DEFAULT_STRATEGIES, START_MARGIN + 1.0 + after, interval, call_s=START_MARGIN + 1.0)
    assert len(MARKER + pack(result)) <= OUTPUT_LIMIT


def test_a_run_that_would_not_fit_is_refused_before_any_call_naming_after_and_interval():
    with pytest.raises(ConfigError) as refused:  # the CLI accepts after up to 300 s
        remote.check_size(DEFAULT_STRATEGIES, 1.0, 300.0, 0.1)
    assert refused.value.field == "after" and "interval" in refused.value.fix and "after <=" in refused.value.fix
    with pytest.raises(ConfigError) as wrapper:
        remote.check_size(("wrapper",), 1.0, 15.0, 0.1)
    assert wrapper.value.field == "strategies" and "Python 3.10" in wrapper.value.message


def _shipped() -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(remote.payload())), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read().decode() for m in archive.getmembers()}  # type: ignore[union-attr]


def test_the_payload_is_the_same_whenever_it_is_made(monkeypatch):
    """Deterministic, also across a clock tick: gzip stamps its header with the time unless told not to (the
    check below failed once in a loaded run, the two payloads made either side of a second)."""
    first = remote.payload()
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)
    assert remote.payload() == first, "same labkit, same command"


def test_the_shipped_tree_runs_on_python_3_9_without_the_rest_of_labkit(tmp_path):
    files = _shipped()
    for name, source in files.items():
        tree = ast.parse(source, feature_version=(3, 9))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("labkit"):
                target = node.module.replace(".", "/")
                assert f"{target}.py" in files or f"{target}/__init__.py" in files, f"{name} imports {node.module}"
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    # -S: no site-packages, so neither this checkout's labkit nor a driver: the modules import with the standard
    # library alone (the drivers, boto3 and SQLAlchemy are imported when used, on the instance)
    modules = "labkit.failover_lab.onhost, labkit.failover_lab.naive, labkit.failover_lab.backoff, labkit.failover_lab.topology"
    done = subprocess.run(
        [sys.executable, "-S", "-c", f"import {modules}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_command_is_valid_bash_and_installs_sqlalchemy_only_for_the_pool():
    with_pool = remote.command({"order": ["pool", "naive"]})
    without = remote.command({"order": ["naive", "topology"]})
    for script in (with_pool, without):
        assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert remote.SQLALCHEMY in with_pool and "sqlalchemy" not in without
