"""03_compute's exercises: prove the instance requires IMDSv2, and fix what blocks the way to the database.

The first reads the instance's metadata options as EC2 describes them now; the second asks the reachability
engine (the same one the sandbox's network obeys) whether the instance reaches every DB instance of the cluster,
and fails a fix that opens the port to an address range.
"""

from __future__ import annotations

from typing import Any

from labkit.aws.tags import NODE_SG_DB
from labkit.security.reach import Reachability
from labkit.workbook.exercises.base import DB_PORT, LiveLab, Outcome, engine_port, exercise_check, not_yet, passed
from labkit.workbook.exercises.network import cidr_problems

NOTEBOOK = "03_compute"


def _instance(lab: LiveLab) -> Any:
    instances = list(lab.snapshot.instances.values())
    return instances[0] if instances else None


@exercise_check(
    "03.imdsv2",
    notebook=NOTEBOOK,
    task="Prove the instance requires IMDSv2: read its metadata options with the EC2 API into `http_tokens`.",
    hints=(
        '`ec2.describe_instances(InstanceIds=[result.ids["instance"]])` describes the instance; its metadata '
        "settings are under `MetadataOptions`.",
        'The answer is `["Reservations"][0]["Instances"][0]["MetadataOptions"]["HttpTokens"]`: "required" means '
        'every metadata request needs a session token (IMDSv2), "optional" would still answer IMDSv1.',
    ),
    solution=(
        'described = config.make_backend().client("ec2").describe_instances(InstanceIds=[result.ids["instance"]])\n'
        'http_tokens = described["Reservations"][0]["Instances"][0]["MetadataOptions"]["HttpTokens"]'
    ),
    answers=("http_tokens",),
)
def imdsv2(lab: LiveLab, answer: Any) -> Outcome:
    instance = _instance(lab)
    if instance is None:
        return not_yet("the lab has no running instance yet: run the apply cell above")
    if answer != instance.http_tokens:
        return not_yet(
            f"the instance's HttpTokens is not {answer!r}: read it from MetadataOptions of describe_instances"
        )
    if instance.http_tokens != "required":
        return not_yet(
            f"the instance answers IMDSv1 (HttpTokens={instance.http_tokens}): a request forgery on the app could "
            "read the role's credentials; set its metadata options to IMDSv2 only (HttpTokens required)"
        )
    return passed(
        f"instance {instance.instance_id} requires IMDSv2 (HttpTokens=required)",
        {"instance": instance.instance_id},
    )


@exercise_check(
    "03.fix-reach",
    notebook=NOTEBOOK,
    task=(
        f"The instance can no longer reach the database. Ask why with `labkit.can_reach`, then fix it: "
        f"tcp {DB_PORT} from the app group, not from an address range."
    ),
    hints=(
        "The verdict above names the hop that blocks and the rule that is missing. Which group lost its rule, "
        "and which call from 01_network puts it back?",
        f'The database group lost its inbound rule: `labkit.authorize_ingress(config, group="sg-db", port={DB_PORT}, '
        'source_group="sg-app")`, or apply the fix the verdict itself carries: '
        "`verdict.fixes[0].apply(config.make_backend())`.",
    ),
    solution=f'labkit.authorize_ingress(config, group="sg-db", port={DB_PORT}, source_group="sg-app")',
    needed_later=True,
)
def fix_reach(lab: LiveLab) -> Outcome:
    instance = _instance(lab)
    if instance is None:
        return not_yet("the lab has no running instance yet: run the apply cell above")
    snapshot, port = lab.snapshot, engine_port(lab.snapshot)
    engine = Reachability(snapshot)
    targets = ["writer", "reader"] if any(c.readers for c in snapshot.clusters.values()) else ["writer"]
    problems = []
    for target in targets:
        verdict = engine.check("instance", target, port)
        if not verdict.reachable:
            hop = verdict.blocked_by
            problems.append(f"{verdict.headline}: {hop.rule}" if hop else verdict.headline)
    problems += cidr_problems(snapshot, lab.group(NODE_SG_DB), port)
    if problems:
        return not_yet(*problems)
    return passed(
        f"instance {instance.instance_id} reaches the {' and '.join(targets)} on tcp {port}; sg-db admits it from "
        "no address range",
        {"instance": instance.instance_id, "security_group": lab.group(NODE_SG_DB)},
    )
