"""01_network's exercises: the two rules between the app tier and the database tier, written by the learner.

The notebook's apply leaves both out (`leave_exercises=True`). The checks read the security groups as they are
now (the snapshot the lint and the reachability engine read) and name any rule that admits the database port
by address range, with the lint's own words for why.
"""

from __future__ import annotations

from labkit.aws.tags import NODE_SG_APP, NODE_SG_DB
from labkit.security.model import Rule, Snapshot
from labkit.security.risks import rule_risks
from labkit.security.wording import peer_text, ports_text
from labkit.workbook.exercises.base import DB_PORT, LiveLab, Outcome, engine_port, exercise_check, not_yet, passed

NOTEBOOK = "01_network"
WHY_GROUPS = (
    "an address range admits every address in it, today's and tomorrow's, and misses the app when its instance\n"
    "  moves; a group reference admits exactly the members of sg-app, wherever they are"
)


def _says(rule: Rule, snapshot: Snapshot) -> str:
    return f"tcp {ports_text(rule)} {'to' if rule.egress else 'from'} {peer_text(rule, snapshot)} (rule {rule.rule_id})"


class Between:
    """The rules of one lab group toward another on the database port: inbound into `own` from `peer`, or outbound
    from `own` to `peer`; `good` are those by group reference."""

    def __init__(self, lab: LiveLab, own: str, peer: str, *, egress: bool) -> None:
        self.node, self.peer_node, self.egress = own, peer, egress
        self.own, self.peer = lab.group(own), lab.group(peer)
        self.snapshot, self.port = lab.snapshot, engine_port(lab.snapshot)
        self.rules = self.snapshot.rules_of(self.own, egress=egress)
        self.good = [r for r in self.rules if r.group_ref == self.peer and r.covers(self.port)]

    def says(self, rule: Rule) -> str:
        return _says(rule, self.snapshot)

    @property
    def verb(self) -> str:
        return "sends" if self.egress else "admits"

    def too_wide(self) -> list[str]:
        """Group rules that open more ports than the database's."""
        return [
            f"{self.node} {self.verb} {self.says(rule)}: more than the database needs, open only {self.port}"
            for rule in self.good
            if rule.span != (self.port, self.port)
        ]

    def outcome(self, problems: list[str]) -> Outcome:
        if problems:
            return not_yet(*problems)
        way = "to" if self.egress else "from"
        return passed(
            f"{self.node} {self.verb} tcp {self.port} {way} {self.peer_node} by group reference (rule "
            f"{self.good[0].rule_id}), {way} no address range",
            {"security_group": self.own, "rule": self.good[0].rule_id},
        )


def cidr_problems(snapshot: Snapshot, db: str, port: int) -> list[str]:
    """Inbound rules of the database group that admit `port` by address range, each with the lint's reason."""
    problems = []
    for rule in snapshot.rules_of(db, egress=False):
        if rule.cidr and rule.covers(port):
            lint = "; ".join(f"{risk.severity}: {risk.text}" for risk in rule_risks(rule))
            problems.append(
                f"sg-db admits {_says(rule, snapshot)}: an address range, not the app group\n"
                f"lint, {lint}\n"
                f"why: {WHY_GROUPS}\n"
                f'remove it: labkit.revoke_rules(config, group="sg-db", port={port}) (every {port} rule of sg-db), '
                'then allow source_group="sg-app"'
            )
    return problems


@exercise_check(
    "01.db-ingress",
    notebook=NOTEBOOK,
    task=f"Allow MySQL into the database group sg-db from the app group sg-app: tcp {DB_PORT}, by group reference.",
    hints=(
        "One call: `labkit.authorize_ingress(config, group=..., port=..., source_group=...)` (or boto3's "
        "`authorize_security_group_ingress`). Which group receives the traffic, and which one sends it?",
        f"The database group receives, on the engine's port ({DB_PORT} for Aurora MySQL); the source is the app "
        f'*group*, not an address range: `group="sg-db"`, `port={DB_PORT}`, `source_group="sg-app"`.',
    ),
    solution=f'labkit.authorize_ingress(config, group="sg-db", port={DB_PORT}, source_group="sg-app")',
    needed_later=True,
)
def db_ingress(lab: LiveLab) -> Outcome:
    pair = Between(lab, NODE_SG_DB, NODE_SG_APP, egress=False)
    problems = cidr_problems(pair.snapshot, pair.own, pair.port)
    if not pair.good:
        near = [pair.says(r) for r in pair.rules if r.group_ref == pair.peer]
        problems.insert(
            0,
            f"sg-db admits {', '.join(near)}, but the database listens on tcp {pair.port}"
            if near
            else f"sg-db has no inbound rule for tcp {pair.port} from sg-app yet",
        )
    for rule in pair.rules:
        if rule.group_ref not in (None, pair.peer) and rule.covers(pair.port):
            problems.append(f"sg-db also admits {pair.says(rule)}: only the app tier needs the database")
    return pair.outcome(problems + pair.too_wide())


@exercise_check(
    "01.app-egress",
    notebook=NOTEBOOK,
    task=f"Let the app group sg-app send MySQL to the database group sg-db: an outbound rule, tcp {DB_PORT}, by group.",
    hints=(
        "The lab removed sg-app's allow-all outbound rule, so each way out is a rule of its own. The call mirrors "
        "the inbound one: `labkit.authorize_egress(config, group=..., port=..., destination_group=...)`.",
        f'The app group sends, to the database group, on {DB_PORT}: `group="sg-app"`, `port={DB_PORT}`, '
        '`destination_group="sg-db"`. An address range (even 0.0.0.0/0) would let the app send MySQL anywhere.',
    ),
    solution=f'labkit.authorize_egress(config, group="sg-app", port={DB_PORT}, destination_group="sg-db")',
    needed_later=True,
)
def app_egress(lab: LiveLab) -> Outcome:
    pair = Between(lab, NODE_SG_APP, NODE_SG_DB, egress=True)
    port, problems = pair.port, []
    if not pair.good:
        problems.append(f"sg-app has no outbound rule for tcp {port} to sg-db yet: the instance's traffic stops there")
    for rule in pair.rules:
        if rule.cidr and rule.covers(port):
            what, ports = ("all traffic", "all") if rule.protocol == "all" else (f"tcp {ports_text(rule)}", None)
            remove = (
                f'labkit.revoke_rules(config, group="sg-app", port={ports_text(rule)}, direction="egress")'
                if not ports
                else f"ec2.revoke_security_group_egress(GroupId=..., SecurityGroupRuleIds=[{rule.rule_id!r}])"
            )
            problems.append(
                f"sg-app sends {what} to {rule.cidr} (rule {rule.rule_id})\n"
                "why: a compromised app could send the database's rows to any server in that range; name the "
                f"database group instead\nremove it: {remove}"
            )
    return pair.outcome(problems + pair.too_wide())
