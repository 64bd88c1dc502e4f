"""The lab-shaped account the security tests build (support/labs.py), checked for its shape."""

from __future__ import annotations

import io

from support.labs import LAB, build_lab, moto_region

from labkit.aws.tags import NODE_SG_APP, NODE_SG_DB

# --- the builder itself ------------------------------------------------------------------------------------


def test_built_lab_is_tagged_and_private() -> None:
    with moto_region() as backend:
        lab = build_lab(backend)
        groups = lab.ec2.describe_security_groups(
            Filters=[{"Name": "tag:labkit:learner", "Values": [lab.config.learner]}]
        )["SecurityGroups"]
        cluster = lab.rds.describe_db_clusters(DBClusterIdentifier=lab.cluster_id)["DBClusters"][0]
        writer = lab.rds.describe_db_instances(DBInstanceIdentifier=lab.writer)["DBInstances"][0]
    assert sorted(g["GroupName"] for g in groups) == [lab.name(NODE_SG_APP), lab.name(NODE_SG_DB)]
    assert cluster["StorageEncrypted"] is True
    assert writer["PubliclyAccessible"] is False


def test_lab_applied_by_default_has_no_findings_and_reaches_the_writer(moto_backend) -> None:
    from labkit.aws.patience import Timing
    from labkit.config import LabConfig
    from labkit.lab.apply import apply
    from labkit.security import can_reach, lint

    config = LabConfig(lab=LAB, learner="applied")
    quick = Timing(poll_seconds=0.01, retry_attempts=6, retry_first_delay=0.01, retry_max_delay=0.05)
    apply(config, moto_backend, stream=io.StringIO(), timing=quick)

    report = lint(config, moto_backend)
    verdict = can_reach("instance", "writer", 3306, config, moto_backend)

    assert len(report) == 0, str(report)
    assert verdict.reachable, str(verdict)
    assert "ingress tcp 3306 from" in next(h.rule for h in verdict.hops if h.step == "security group ingress")
