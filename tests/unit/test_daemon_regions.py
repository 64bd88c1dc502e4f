"""The daemon's region lists (sandbox/daemon/regions.py): what botocore answers, shared by every boto3 Session of the
process, and kept per botocore release in the user's cache folder so a later start parses no service model for them
(EC2's, which moto's import asks for, is 0.1-0.15 s of every start). A cache the user cannot trust, or a damaged one,
is only slower."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import botocore

CASES = [
    ("ec2", "aws", False), ("ec2", "aws-us-gov", False), ("ec2", "aws-cn", False), ("rds", "aws", False),
    ("s3", "aws", True),
]  # fmt: skip

# Run in a fresh interpreter: importing the daemon patches boto3 for the whole process.
SCRIPT = f"""
import json, botocore.session, botocore.loaders
cases = {CASES!r}
fresh = botocore.session.Session()
expected = [fresh.get_available_regions(*case) for case in cases]
models = []
load = botocore.loaders.Loader.load_service_model
def counting(self, service_name, type_name, api_version=None):
    models.append(service_name)
    return load(self, service_name, type_name, api_version)
botocore.loaders.Loader.load_service_model = counting
import boto3
import labkit.sandbox.daemon.main as daemon
import moto.rds.models  # imports moto's EC2 models, which list every partition's regions
got = [boto3.Session().get_available_regions(*case) for case in cases]
again = [boto3.Session().get_available_regions(*case) for case in cases]
daemon.REGION_LISTS.save()
print(json.dumps({{"same": expected == got == again, "count": len(got[0]), "models": models,
                   "module": boto3.Session.get_available_regions.__module__}}))
"""


def _start(cache: Path) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cache_file(cache: Path) -> Path:
    return cache / "labkit" / "botocore" / f"regions-{botocore.__version__}.json"


def test_the_lists_are_botocores_and_a_second_start_reads_them_without_parsing_a_service_model(tmp_path: Path):
    first = _start(tmp_path)
    assert first["same"] and first["count"] > 10
    assert first["module"] == "labkit.sandbox.daemon.regions", (
        "the shared lists are in place once the daemon is imported"
    )
    assert "ec2" in first["models"], "the first start reads EC2's model for its endpoint prefix, as botocore does"
    saved = _cache_file(tmp_path)
    assert saved.stat().st_mode & 0o777 == 0o600 and saved.parent.stat().st_mode & 0o777 == 0o700

    second = _start(tmp_path)
    assert second["same"], "the kept lists are the ones botocore gives"
    assert "ec2" not in second["models"] and "rds" not in second["models"], second["models"]


def test_a_damaged_or_untrusted_cache_is_read_from_botocore_again(tmp_path: Path):
    _start(tmp_path)
    saved = _cache_file(tmp_path)
    saved.write_text(json.dumps({"ec2 aws False": ["xx-fake-1"]}))
    saved.parent.chmod(0o777)  # anyone could have written this list
    untrusted = _start(tmp_path)
    assert untrusted["same"] and "ec2" in untrusted["models"], "a list others can write is not believed"
    assert json.loads(saved.read_text()) == {"ec2 aws False": ["xx-fake-1"]}, "nor written to"

    saved.parent.chmod(0o700)
    saved.write_text("{not json")
    damaged = _start(tmp_path)
    assert damaged["same"] and "ec2" in damaged["models"]
