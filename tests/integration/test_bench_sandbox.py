"""The benchmark, replica lag and failover against a real sandbox (real MariaDB replication, real role swap)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from support.sandbox_lab import admin_connection, sandbox_lab

from labkit.access.schema import create_schema
from labkit.access.sql import close_engines, sql
from labkit.access.tunnel import close_all
from labkit.bench import benchmark, failover, replica_lag

LAB, LEARNER = "benchlab", "bo"


@pytest.fixture(scope="module")
def lab(sandbox_home):
    config, backend = sandbox_lab(LAB, LEARNER)
    create_schema(config=config, backend=backend)
    yield config, backend
    close_engines()
    close_all()


def test_writer_and_reader_on_both_paths_keep_every_sample(lab, tmp_path):
    config, backend = lab
    result = benchmark(("writer", "reader"), path="direct", count=200, warmup=10, config=config, backend=backend)
    tunnel = benchmark(("writer", "reader"), path="tunnel", count=100, warmup=10, config=config, backend=backend)
    summary = pd.concat([result.summary(), tunnel.summary()], ignore_index=True)
    assert summary[["target", "path"]].values.tolist() == [
        ["writer", "direct"], ["reader", "direct"], ["writer", "tunnel"], ["reader", "tunnel"],
    ]  # fmt: skip
    assert summary["count"].tolist() == [200, 200, 100, 100] and summary["errors"].sum() == 0
    assert (summary["p50_us"] > 0).all() and (summary["p50_us"] <= summary["p99_us"]).all()
    assert len(result.samples) == 2 * (200 + 10)  # warm-up kept, marked
    difference = result.difference("writer", "reader")
    assert difference["ci95_low_us"][0] <= difference["estimate_us"][0] <= difference["ci95_high_us"][0]
    csv_path, meta_path = result.save(tmp_path / "run")
    again = pd.read_csv(csv_path)
    assert len(again) == len(result.samples) and list(again.columns) == list(result.samples.columns)
    metadata = json.loads(meta_path.read_text())
    assert metadata["backend"] == "sandbox" and metadata["workload"] == "point" and metadata["path"] == "direct"
    assert result.plot_distribution() is not None and result.plot_timeline() is not None


def test_inserts_land_on_the_writer(lab):
    config, backend = lab
    exists = len(sql("SHOW TABLES LIKE 'bench_writes'", config=config, backend=backend)) == 1
    before = int(sql("SELECT COUNT(*) AS n FROM bench_writes", config=config, backend=backend)["n"][0]) if exists else 0
    result = benchmark(
        "writer", workload="insert", path="direct", count=60, concurrency=3, warmup=5, config=config, backend=backend
    )
    assert result.summary()["errors"][0] == 0
    after = int(sql("SELECT COUNT(*) AS n FROM bench_writes", config=config, backend=backend)["n"][0])
    assert after - before == 60 + 3 * 5


def test_replica_lag_is_small_and_sees_a_stopped_replica(lab):
    config, backend = lab
    normal = replica_lag(10, interval=0.0, config=config, backend=backend)
    summary = normal.summary()
    assert summary["markers"][0] == 10 and summary["errors"][0] == 0
    assert summary["p50_ms"][0] < 200
    reader = summary["reader"][0]
    admin = admin_connection(reader)
    with admin.cursor() as cursor:
        cursor.execute("STOP SLAVE SQL_THREAD")
    found = {}
    measuring = threading.Thread(
        target=lambda: found.update(result=replica_lag(2, interval=0.0, timeout=10, config=config, backend=backend))
    )
    measuring.start()
    time.sleep(1.5)  # the run connects first (a few hundred ms), then writes its first marker
    with admin.cursor() as cursor:
        cursor.execute("START SLAVE SQL_THREAD")
    admin.close()
    measuring.join(30)
    delayed = found["result"].samples
    assert delayed["lag_ms"][0] >= max(500, 20 * summary["p50_ms"][0])  # the first marker waited for the SQL thread
    assert delayed["error"].isna().all()


def test_cli_bench_prints_json(lab):
    labkit = Path(sys.executable).with_name("labkit")
    done = subprocess.run(
        [str(labkit), "bench", "--target", "reader", "--path", "direct", "--workload", "range", "--count", "50",
         "--concurrency", "2", "--json", "--lab", LAB, "--learner", LEARNER],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    row = report["summary"][0]
    assert (row["target"], row["workload"], row["count"], row["errors"]) == ("reader", "range", 50, 0)
    assert row["p50_us"] > 0 and report["metadata"]["concurrency"] == 2


def test_failover_swaps_the_writer_and_loses_no_acknowledged_write(lab):
    config, backend = lab  # last in the module: it leaves the roles swapped
    report = failover(interval=0.1, baseline=1.0, settle=1.0, timeout=60, config=config, backend=backend)
    assert report.writer_before == f"{LAB}-{LEARNER}-db-writer"
    assert report.writer_after == f"{LAB}-{LEARNER}-db-reader-1"
    served = set(report.probes.loc[report.probes["ok"], "served_by"])
    assert served == {report.writer_before, report.writer_after}
    assert report.acknowledged >= 10 and report.lost == []
    assert 0 <= report.downtime_s < 10
    summary = dict(zip(report.summary()["measure"], report.summary()["value"], strict=True))
    assert summary["acknowledged writes lost"] == 0
