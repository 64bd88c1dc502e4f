"""The session plugin's lean backend: trimmed service models that answer exactly as botocore's full ones.

Each tunnel's plugin describes the rules with boto3; loading only the Describe operations (and one session
for every client) is what keeps a tunnel cheap. These tests hold the trimmed models to the full ones: the same
reachability snapshot from the same account, every describe the snapshot makes present, nothing else callable.
"""

from __future__ import annotations

import json

import pytest
from support.labs import build_lab

from labkit.sandbox.vpc import lean
from labkit.security.reach import Reachability
from labkit.security.snapshot import gather


@pytest.fixture
def lean_backend(region, lab_home, monkeypatch):
    """A LeanBackend over the same in-process moto as `region` (AWS's endpoint names, which moto answers)."""
    backend = lean.LeanBackend(region.region)
    monkeypatch.setattr(backend, "endpoint_url", lambda: None)
    return backend


def test_the_lean_backend_describes_the_same_rules_as_the_full_models(region, lean_backend):
    lab = build_lab(region)
    scope = {"instance_ids": (lab.instance_id,), "db_identifiers": (lab.writer, lab.reader), "lab": False}
    assert gather(lean_backend, **scope) == gather(region, **scope)
    verdict = Reachability.snapshot(lean_backend, **scope).check(lab.instance_id, lab.writer, 3306)
    assert verdict.reachable
    region.client("ec2").revoke_security_group_ingress(GroupId=lab.db_sg, SecurityGroupRuleIds=[lab.db_rule_id])
    blocked = Reachability.snapshot(lean_backend, **scope).check(lab.instance_id, lab.writer, 3306)
    assert not blocked.reachable and blocked.blocked_by is not None


def test_one_session_serves_every_client_and_only_read_calls_exist(lean_backend):
    # The operations of the model each client was built from (not `hasattr`: the unit tests' speed-ups share
    # client classes between sessions, see support/backends.moto_speedups).
    ec2, rds, ssm = (set(lean_backend.client(s).meta.service_model.operation_names) for s in ("ec2", "rds", "ssm"))
    assert lean_backend.session() is lean_backend.session()
    assert "DescribeSecurityGroupRules" in ec2 and "RunInstances" not in ec2
    assert "DescribeDBClusters" in rds and "DeleteDBCluster" not in rds
    assert {"DescribeSessions", "TerminateSession"} <= ssm and "SendCommand" not in ssm


def test_the_models_are_made_once_per_botocore_version_without_documentation(lab_home):
    made = lean.ensure_models()
    assert made == lean.models_dir() and made.name.startswith("botocore-")
    for service in lean.SERVICES:
        (version,) = [p for p in (made / service).iterdir()]
        model = json.loads((version / "service-2.json").read_text())
        assert all(
            name.startswith("Describe") or name in lean.EXTRA_OPERATIONS.get(service, ())
            for name in model["operations"]
        )
        assert '"documentation": "' not in (version / "service-2.json").read_text()
    stamp = (made / "ec2").stat().st_mtime_ns
    assert lean.ensure_models() == made and (made / "ec2").stat().st_mtime_ns == stamp  # reused, not remade
    lean.write_models(made)  # a second writer finding them made leaves them as they are
    assert (made / "ec2").stat().st_mtime_ns == stamp


def test_trimming_keeps_every_shape_an_operation_reaches():
    model = {
        "metadata": {},
        "operations": {
            "DescribeThings": {"input": {"shape": "In"}, "output": {"shape": "Out"}, "errors": [{"shape": "Nope"}]},
            "DeleteThings": {"input": {"shape": "Gone"}},
        },
        "shapes": {
            "In": {"type": "structure", "members": {"documentation": {"shape": "Text"}}, "documentation": "<p>x</p>"},
            "Out": {"type": "structure", "members": {"Things": {"shape": "List"}}},
            "List": {"type": "list", "member": {"shape": "Map"}},
            "Map": {"type": "map", "key": {"shape": "Text"}, "value": {"shape": "Text"}},
            "Text": {"type": "string"},
            "Nope": {"type": "structure", "members": {}},
            "Gone": {"type": "structure", "members": {}},
        },
    }
    kept = lean.trimmed(model, {"DescribeThings"})
    assert set(kept["operations"]) == {"DescribeThings"}
    assert set(kept["shapes"]) == {"In", "Out", "List", "Map", "Text", "Nope"}
    assert kept["shapes"]["In"] == {"type": "structure", "members": {"documentation": {"shape": "Text"}}}


def test_a_home_it_cannot_write_falls_back_to_the_full_models(lab_home, capfd, monkeypatch):
    lab_home.mkdir(parents=True, exist_ok=True)
    (lab_home / "cache").write_text("a file where the cache folder would go")  # mkdir fails, even for root
    assert lean.ensure_models() is None
    assert "using botocore's full models" in capfd.readouterr().err
    backend = lean.LeanBackend("us-east-1")
    monkeypatch.setattr(backend, "endpoint_url", lambda: None)
    assert "RunInstances" in backend.client("ec2").meta.service_model.operation_names  # full: bigger, never broken
