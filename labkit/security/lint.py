"""A security lint of the lab: risky rules, a database group that shuts the app out, public or unencrypted
databases, IMDSv1, unused groups. Every finding carries its severity and the fix."""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from labkit.aws.backend import Backend
from labkit.aws.tags import NODE_SG_APP, NODE_SG_DB
from labkit.engines import engine_of
from labkit.security.fixes import ApiCall, Fix, authorize, revoke
from labkit.security.model import Rule, Snapshot, lab_group_ids
from labkit.security.risks import DATABASE_PORTS, SEVERITY_ORDER, SSH_PORT, Risk, rule_risks
from labkit.security.snapshot import gather
from labkit.security.wording import peer_text, ports_text

if TYPE_CHECKING:
    import pandas as pd
    from pandas.io.formats.style import Styler


def app_to_db_description(port: int) -> str:
    """The description of the rule that lets the app tier in on a database port (as the lab's own rule says)."""
    return f"{DATABASE_PORTS.get(port, engine_of().family)} from the app tier"


@dataclass(frozen=True)
class Finding:
    """One lint finding: how bad, on what, what is wrong, and the fix."""

    severity: str
    check: str
    resource: str
    finding: str
    fix: Fix | None = None

    def __str__(self) -> str:
        text = f"{self.severity.upper():<6} {self.resource}: {self.finding}"
        if self.fix:
            text += "\n       fix: " + str(self.fix).replace("\n", "\n         ")
        return text


class LintReport(Sequence[Finding]):
    """The findings of one lint run, most severe first; renders as a table in a notebook."""

    def __init__(self, findings: Sequence[Finding], checked: str = "") -> None:
        self.findings = tuple(sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.resource, f.check)))
        self.checked = checked

    @overload
    def __getitem__(self, index: int) -> Finding: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Finding]: ...
    def __getitem__(self, index: int | slice) -> Finding | Sequence[Finding]:
        return self.findings[index]

    def __len__(self) -> int:
        return len(self.findings)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    @property
    def high(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "high")

    def checks(self) -> set[str]:
        return {f.check for f in self.findings}

    def frame(self) -> pd.DataFrame:
        """Findings as a DataFrame: severity, check, resource, finding, fix (summary), change (boto3 code)."""
        import pandas as pd  # heavy dependency: the lint runs without it; only a report shown as a table needs it

        rows = [
            {
                "severity": f.severity,
                "check": f.check,
                "resource": f.resource,
                "finding": f.finding,
                "fix": f.fix.summary if f.fix else "",
                "change": f.fix.python() if f.fix else "",
            }
            for f in self.findings
        ]
        return pd.DataFrame(rows, columns=["severity", "check", "resource", "finding", "fix", "change"])

    def styled(self) -> Styler:
        """The findings table for a notebook, rows coloured by severity."""
        from labkit.security.tables import style_findings  # heavy dependency (pandas), as in frame()

        return style_findings(self.frame())

    def summary(self) -> str:
        if not self.findings:
            return f"lint: no findings ({self.checked})" if self.checked else "lint: no findings"
        counts = {s: sum(f.severity == s for f in self.findings) for s in SEVERITY_ORDER}
        return "lint: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)

    def __str__(self) -> str:
        return "\n".join([self.summary(), *(str(f) for f in self.findings)])

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = f"<p><b>{html.escape(self.summary())}</b></p>"
        return head if not self.findings else head + self.styled().to_html()


# --- checks --------------------------------------------------------------------------------------------


def _rule_fix(rule: Rule, risk: Risk, snapshot: Snapshot) -> Fix:
    remove = revoke(rule.group_id, rule.rule_id, egress=False)
    if risk.check == "world-open" and risk.port == SSH_PORT:
        return Fix("remove the rule; reach the instance with SSM Session Manager (or allow only your /32)", (remove,))
    if risk.port in DATABASE_PORTS:
        return _database_by_group_fix(rule, snapshot, remove, risk.port)
    if risk.check == "ssh-wide":
        return Fix("replace the rule with one for your own address only (/32), or remove it and use SSM", (remove,))
    return Fix("remove the rule; open only the ports the app needs, from the peers that need them", (remove,))


def _database_by_group_fix(rule: Rule, snapshot: Snapshot, remove: ApiCall, port: int) -> Fix:
    scope = snapshot.scope
    app = scope.group_for(NODE_SG_APP) if scope else None
    if app and app != rule.group_id and not _allows_group(snapshot, rule.group_id, app, port):
        allow = authorize(
            rule.group_id, port, egress=False, group=app, cidr=None, description=app_to_db_description(port)
        )
        return Fix(
            f"allow {port} from the app group {snapshot.group_name(app)} instead of a CIDR",
            (allow, remove),
        )
    return Fix(f"remove the CIDR rule; allow {port} from the app's security group instead", (remove,))


def _allows_group(snapshot: Snapshot, group_id: str, source_group: str, port: int) -> bool:
    return any(r.group_ref == source_group and r.covers(port) for r in snapshot.rules_of(group_id, egress=False))


def rule_findings(snapshot: Snapshot) -> Iterator[Finding]:
    """Risky inbound rules on the lab's groups (and groups attached to the lab's resources)."""
    for group_id in lab_group_ids(snapshot):
        for rule in snapshot.rules_of(group_id, egress=False):
            for risk in rule_risks(rule):
                where = f"{rule.protocol} {ports_text(rule)} from {peer_text(rule, snapshot)}"
                yield Finding(
                    risk.severity,
                    risk.check,
                    snapshot.group_label(group_id),
                    f"{risk.text} (rule {rule.rule_id}: {where})",
                    _rule_fix(rule, risk, snapshot),
                )


def db_group_findings(snapshot: Snapshot) -> Iterator[Finding]:
    """The database group must let the app group in on the database port, by group reference."""
    scope = snapshot.scope
    app, db = (scope.group_for(NODE_SG_APP), scope.group_for(NODE_SG_DB)) if scope else (None, None)
    if not app or not db:
        return
    cluster = snapshot.clusters.get(scope.cluster_id or "") if scope else None
    port = cluster.port if cluster else engine_of().port
    if _allows_group(snapshot, db, app, port):
        return
    allow = authorize(db, port, egress=False, group=app, cidr=None, description=app_to_db_description(port))
    yield Finding(
        "high",
        "db-group-missing-app",
        snapshot.group_label(db),
        f"does not allow tcp {port} from the app group {snapshot.group_name(app)}: the app cannot reach the database",
        Fix(f"allow tcp {port} into {snapshot.group_name(db)} from {snapshot.group_name(app)}", (allow,)),
    )


def database_findings(snapshot: Snapshot) -> Iterator[Finding]:
    """Publicly accessible DB instances; unencrypted clusters or standalone instances."""
    for db in snapshot.databases.values():
        if db.publicly_accessible:
            change = ApiCall(
                "rds",
                "modify_db_instance",
                {
                    "DBInstanceIdentifier": db.identifier,
                    "PubliclyAccessible": False,
                    "ApplyImmediately": True,
                },
            )
            yield Finding(
                "high",
                "db-public",
                db.identifier,
                "DB instance is publicly accessible",
                Fix("make it private", (change,)),
            )
        if not db.cluster_id and not db.storage_encrypted:
            yield _unencrypted(db.identifier, "DB instance")
    for cluster in snapshot.clusters.values():
        if not cluster.storage_encrypted:
            yield _unencrypted(cluster.identifier, "cluster")


def _unencrypted(identifier: str, kind: str) -> Finding:
    fix = Fix(
        "encryption cannot be turned on in place: snapshot, restore the snapshot with StorageEncrypted=True, "
        "and switch over (for this lab: destroy and apply again; the default encrypts)"
    )
    return Finding("medium", "storage-unencrypted", identifier, f"{kind} storage is not encrypted", fix)


def instance_findings(snapshot: Snapshot) -> Iterator[Finding]:
    """Instances that still answer IMDSv1 (metadata without a session token)."""
    for instance in snapshot.instances.values():
        if instance.http_endpoint != "disabled" and instance.http_tokens != "required":
            change = ApiCall(
                "ec2",
                "modify_instance_metadata_options",
                {"InstanceId": instance.instance_id, "HttpTokens": "required", "HttpEndpoint": "enabled"},
            )
            yield Finding(
                "high",
                "imdsv1",
                instance.label,
                f"IMDSv1 allowed (HttpTokens={instance.http_tokens}): "
                "a request forgery can read the role's credentials",
                Fix("require IMDSv2 session tokens", (change,)),
            )


def unused_group_findings(snapshot: Snapshot) -> Iterator[Finding]:
    """Lab groups nothing uses (the app and db groups only once their instance or cluster exists)."""
    scope = snapshot.scope
    if scope is None:
        return
    for group_id, node in sorted(scope.group_nodes.items()):
        if group_id in snapshot.attached_group_ids:
            continue
        if (node == NODE_SG_APP and not scope.instance_ids) or (node == NODE_SG_DB and not scope.cluster_id):
            continue  # its consumer is not built yet
        delete = ApiCall("ec2", "delete_security_group", {"GroupId": group_id})
        fix = Fix("delete it", (delete,), caution="AWS refuses while another group's rule still references it")
        yield Finding("low", "unused-group", snapshot.group_label(group_id), "lab security group is not used", fix)


CHECKS = (rule_findings, db_group_findings, database_findings, instance_findings, unused_group_findings)


def lint_snapshot(snapshot: Snapshot) -> LintReport:
    """Run every check against a snapshot (no AWS calls)."""
    findings = [finding for check in CHECKS for finding in check(snapshot)]
    checked = (
        f"{len(lab_group_ids(snapshot))} groups, {len(snapshot.instances)} instances, "
        f"{len(snapshot.databases)} DB instances checked"
    )
    return LintReport(findings, checked)


def lint(config: Any | None = None, backend: Backend | None = None, *, snapshot: Snapshot | None = None) -> LintReport:
    """Lint the lab's security: findings most severe first, each with the fix. Empty for the default lab."""
    return lint_snapshot(snapshot if snapshot is not None else gather(backend, config))
