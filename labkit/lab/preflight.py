"""The preflight: proof, before anything is created, that the lab will run in this account and region.

    report = labkit.preflight(config)      # a table in a notebook, lines in a terminal
    report.ok                              # False when any check failed; `labkit preflight` then exits 1

Read-only: every check is a describe, get, list or simulate call. One row per check, pass / warn / fail with
the fix. A check this backend cannot answer (the sandbox has no IAM simulation, quotas or engine catalog) is a
warn row that says so, never a pass. `apply()` runs it first on a backend whose `preflight_before_apply` is
set (real AWS) and stops on a fail row.
"""

from __future__ import annotations

import html
import json
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.parsers import ResponseParserError

from labkit.aws.actions import policy_actions
from labkit.aws.backend import PLUGIN, PLUGIN_NEWER_THAN, PLUGIN_UPDATE, Backend, plugin_version_check
from labkit.aws.errors import error_code, error_message
from labkit.config import LabConfig, lab_and_backend
from labkit.errors import LabkitError
from labkit.lab.engine import choose_engine
from labkit.lab.plan import check_backend_region, check_region_enabled
from labkit.lab.resources import LabContext, paginate
from labkit.lab.resources.compute import ami_parameter, instance_architecture

PASS, WARN, FAIL = "pass", "warn", "fail"
POLICIES = Path(__file__).resolve().parents[2] / "policies"
LEARNER_POLICIES = "learner-*.json"  # the learner's grants, one file per stage of the workbook
UNANSWERED = (NotImplementedError, ResponseParserError)  # moto in-process, moto's server (an HTML 500)
SIMULATE_BATCH = 50


@dataclass(frozen=True)
class Row:
    """One check: its name, pass / warn / fail, what was found, and what to do when it is not a pass."""

    check: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class Preflight:
    """Every check's row, and whether the lab can go ahead (no fail row)."""

    config: LabConfig
    backend: str
    region: str
    rows: list[Row]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(row.status != FAIL for row in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [row for row in self.rows if row.status == FAIL]

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def headline(self) -> str:
        counts = {status: sum(row.status == status for row in self.rows) for status in (PASS, WARN, FAIL)}
        verdict = "ready" if self.ok else "NOT ready"
        return (
            f"preflight of {self.config.lab}/{self.config.learner} on {self.backend} in {self.region}: {verdict} "
            f"({counts[PASS]} pass, {counts[WARN]} warn, {counts[FAIL]} fail)"  # seconds: in to_dict, not here
        )

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(row) for row in self.rows], columns=["check", "status", "detail", "fix"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "backend": self.backend,
            "region": self.region,
            "seconds": round(self.seconds, 2),
            "rows": [asdict(row) for row in self.rows],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def lines(self) -> list[str]:
        """The terminal's view: a line per check, the fix indented under it."""
        out = [self.headline()]
        for row in self.rows:
            out.append(f"{row.status.upper():4}  {row.check}: {row.detail}")
            if row.fix and row.status != PASS:
                out.append(f"      fix: {row.fix}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from labkit.display import literal_html  # dollar amounts render literally, not as MathJax

        colours = {PASS: "#2e7d32", WARN: "#b58105", FAIL: "#c62828"}
        cells = "".join(
            f'<tr><td>{html.escape(row.check)}</td><td><b style="color:{colours[row.status]}">{row.status}</b></td>'
            f"<td>{html.escape(row.detail)}</td><td>{html.escape(row.fix if row.status != PASS else '')}</td></tr>"
            for row in self.rows
        )
        head = "<tr><th>check</th><th>status</th><th>detail</th><th>fix</th></tr>"
        table = f'<table class="dataframe"><thead>{head}</thead><tbody>{cells}</tbody></table>'
        return literal_html(f"<p><b>{html.escape(self.headline())}</b></p>{table}")


class PreflightFailed(LabkitError):
    """apply() stopped before creating anything: a preflight check failed."""


# ----- the checks -----


def _unanswered_row(check: str, what: str) -> Row:
    return Row(check, WARN, f"not checked here: this backend does not answer {what}", "")


def check_identity(backend: Backend) -> tuple[Row, dict[str, Any] | None]:
    try:
        identity = backend.client("sts").get_caller_identity()
    except NoCredentialsError:
        return Row(
            "credentials",
            FAIL,
            "no AWS credentials found",
            "run `aws configure`, or `aws sso login` and set AWS_PROFILE",
        ), None
    except (ClientError, BotoCoreError) as exc:
        return Row(
            "credentials",
            FAIL,
            f"{error_code(exc) or type(exc).__name__}: {error_message(exc) or exc}",
            "refresh your credentials (`aws sso login`, or new access keys), then run the preflight again",
        ), None
    return Row("credentials", PASS, f"account {identity['Account']} as {identity['Arn']}"), identity


def check_region(ctx: LabContext) -> Row:
    config = ctx.config
    try:
        check_region_enabled(ctx)
    except LabkitError as exc:
        return Row("region", FAIL, exc.message, exc.fix or "")
    return Row("region", PASS, f"{config.region} is enabled (partition {config.partition})")


def _principal_arn(arn: str) -> str | None:
    """The IAM user or role to simulate for a caller ARN (an assumed role's session names its role; its path is
    not in the session ARN, so a role under a path is not found and the row says the simulation failed);
    None for the root user and federated users, which the simulator cannot take."""
    parts = arn.split(":", 5)
    if len(parts) != 6:
        return None
    _, partition, _, _, account, resource = parts
    kind, _, names = resource.partition("/")
    if kind == "assumed-role":
        return f"arn:{partition}:iam::{account}:role/{names.split('/')[0]}"
    if kind in ("user", "role") and names:
        return f"arn:{partition}:iam::{account}:{resource}"
    return None


def learner_grants(folder: Path = POLICIES) -> dict[str, dict[str, Any]]:
    """Per action the workbook needs: the policy file granting it and whether that grant is exact to simulate
    (`Resource: *` with no condition), from the learner policy files in `policies/`."""
    grants: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob(LEARNER_POLICIES)):
        document = json.loads(path.read_text())
        statements = document.get("Statement", [])
        for statement in [statements] if isinstance(statements, dict) else statements:
            exact = statement.get("Resource") in ("*", ["*"]) and not statement.get("Condition")
            for action in policy_actions({"Statement": [statement]}):
                entry = grants.setdefault(action, {"file": path.name, "exact": False})
                entry["exact"] = entry["exact"] or exact
    return grants


def _context_entries(config: LabConfig) -> list[dict[str, Any]]:
    """What the lab's own calls carry, so tag- and role-scoped grants are simulated as the calls would be."""
    return [
        {"ContextKeyName": "aws:RequestTag/labkit:lab", "ContextKeyValues": [config.lab], "ContextKeyType": "string"},
        {"ContextKeyName": "aws:ResourceTag/labkit:lab", "ContextKeyValues": [config.lab], "ContextKeyType": "string"},
        {
            "ContextKeyName": "aws:RequestTag/labkit:learner",
            "ContextKeyValues": [config.learner],
            "ContextKeyType": "string",
        },
        {
            "ContextKeyName": "aws:ResourceTag/labkit:learner",
            "ContextKeyValues": [config.learner],
            "ContextKeyType": "string",
        },
        {
            "ContextKeyName": "iam:PassedToService",
            "ContextKeyValues": ["ec2.amazonaws.com"],
            "ContextKeyType": "string",
        },
    ]


def _simulate(iam: Any, principal: str, actions: list[str], config: LabConfig) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for start in range(0, len(actions), SIMULATE_BATCH):
        batch = actions[start : start + SIMULATE_BATCH]
        pages = iam.get_paginator("simulate_principal_policy").paginate(
            PolicySourceArn=principal, ActionNames=batch, ContextEntries=_context_entries(config)
        )
        for page in pages:
            for result in page.get("EvaluationResults", []):
                results[result["EvalActionName"]] = result
    return results


def check_permissions(backend: Backend, config: LabConfig, caller_arn: str) -> Row:
    """Simulate every action the workbook calls for the caller (iam:SimulatePrincipalPolicy)."""
    grants = learner_grants()
    if not grants:
        return Row("permissions", WARN, f"no learner policy files in {POLICIES}: nothing to simulate", "")
    principal = _principal_arn(caller_arn)
    if principal is None:
        return Row(
            "permissions",
            WARN,
            f"{caller_arn} cannot be simulated (the root user or a federated user)",
            "work as an IAM user or role that holds the learner policy (policies/learner-*.json), not as root",
        )
    try:
        results = _simulate(backend.client("iam"), principal, sorted(grants), config)
    except UNANSWERED:
        return _unanswered_row("permissions", "iam:SimulatePrincipalPolicy (the sandbox grants every action)")
    except ClientError as exc:
        code = error_code(exc)
        if code in ("AccessDenied", "AccessDeniedException", "NoSuchEntity"):
            return Row(
                "permissions",
                WARN,
                f"could not simulate your permissions ({code}): your identity may not call iam:SimulatePrincipalPolicy",
                "ask for iam:SimulatePrincipalPolicy on your own user or role, or check that the learner policy "
                "files (policies/learner-*.json) are attached; actions that are missing will fail with AccessDenied",
            )
        raise
    denied = sorted(a for a, r in results.items() if r["EvalDecision"] == "explicitDeny")
    missing = sorted(
        a for a, r in results.items() if r["EvalDecision"] == "implicitDeny" and grants[a]["exact"] and a not in denied
    )
    unsure = sorted(a for a, r in results.items() if r["EvalDecision"] == "implicitDeny" and not grants[a]["exact"])
    if denied or missing:
        files = sorted({grants[a]["file"] for a in denied + missing})
        listed = ", ".join(denied + missing)
        what = (
            f"{len(denied)} explicitly denied, {len(missing)} not granted" if denied else f"{len(missing)} not granted"
        )
        return Row(
            "permissions",
            FAIL,
            f"{what} of {len(results)} actions: {listed}",
            f"attach the policies that grant them: {', '.join(f'policies/{f}' for f in files)}"
            + (" (and remove the deny)" if denied else ""),
        )
    if unsure:
        return Row(
            "permissions",
            WARN,
            f"{len(results) - len(unsure)} of {len(results)} actions allowed; {len(unsure)} are granted only for "
            f"lab-tagged or lab-scoped resources, which a simulation without the resource cannot confirm: "
            f"{', '.join(unsure[:8])}{' ...' if len(unsure) > 8 else ''}",
            "nothing to do if you attached the learner policy files (policies/learner-*.json)",
        )
    return Row("permissions", PASS, f"all {len(results)} actions the workbook calls are allowed for {principal}")


def check_engine(backend: Backend, config: LabConfig) -> Row:
    try:
        choice = choose_engine(backend, config)
    except LabkitError as exc:
        return Row("engine and DB class", FAIL, exc.message, exc.fix or "")
    if not choice.checked:
        return Row("engine and DB class", WARN, f"not checked here: {choice.describe()}", "")
    return Row("engine and DB class", PASS, choice.describe())


def check_instance_type(ctx: LabContext) -> list[Row]:
    """The EC2 instance type is offered in the region's zones and matches an AMI architecture; the AMI resolves."""
    config, ec2 = ctx.config, ctx.client("ec2")
    offers = paginate(
        ec2, "describe_instance_type_offerings", "InstanceTypeOfferings", LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": [config.instance_type]}],
    )  # fmt: skip
    zones = sorted({offer["Location"] for offer in offers})
    rows = []
    if not zones:
        rows.append(
            Row(
                "EC2 instance type",
                FAIL,
                f"{config.instance_type} is not offered in any zone of {config.region}",
                "choose another instance_type, e.g. t3.micro",
            )
        )
        return rows
    try:
        architecture = instance_architecture(ctx)
    except LabkitError as exc:
        return [Row("EC2 instance type", FAIL, exc.message, exc.fix or "")]
    rows.append(
        Row("EC2 instance type", PASS, f"{config.instance_type} ({architecture}) offered in {', '.join(zones)}")
    )
    parameter = ami_parameter(ctx)
    try:
        ami = ctx.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
    except ClientError as exc:
        rows.append(
            Row(
                "AMI",
                FAIL,
                f"{parameter}: {error_code(exc)}",
                "your identity needs ssm:GetParameter on AWS's public AMI parameters (policies/learner-read.json)",
            )
        )
        return rows
    rows.append(Row("AMI", PASS, f"{ami} from {parameter}"))
    return rows


def check_quotas(backend: Backend, config: LabConfig) -> Row:
    """What one lab needs of each account quota, against what the account uses (Service Quotas or account
    attributes); a limit no source would tell is a warn, a free backend has no account quotas to check."""
    if backend.free:
        return Row("quotas", WARN, "not checked here: this backend has no account quotas", "")
    from labkit.classroom.quotas import class_check  # the instructor's quota arithmetic, for one lab

    report = class_check(1, config, backend)
    short = [line for line in report.lines if not line.fits]
    if short:
        return Row(
            "quotas",
            WARN if _lab_exists(backend, config) else FAIL,
            "; ".join(f"{line.resource}: needs {line.needed}, {line.available} left" for line in short),
            " ".join(report.suggestions) or "ask for more in the Service Quotas console",
        )
    assumed = [line.resource for line in report.lines if line.source.startswith("documented default")]
    if assumed:
        return Row(
            "quotas",
            WARN,
            f"fits, but these limits were assumed from AWS's documented defaults: {', '.join(assumed)}",
            "allow servicequotas:GetServiceQuota to check the real limits",
        )
    return Row("quotas", PASS, f"fits: {len(report.lines)} quotas checked")


def _lab_exists(backend: Backend, config: LabConfig) -> bool:
    """Whether this learner's lab already has resources here: they count as used, yet apply needs no more."""
    from labkit.lab.inventory import inventory

    return bool(inventory(LabContext(config, backend)))


def check_plugin(backend: Backend) -> Row:
    command = backend.session_plugin()
    if command is None:
        ok, detail = plugin_version_check(None)
        return Row(PLUGIN, FAIL, detail, "install it, then run the preflight again")
    try:
        printed = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Row(PLUGIN, FAIL, f"{command[0]} does not run: {exc}", "reinstall session-manager-plugin")
    ok, detail = plugin_version_check(printed.splitlines()[-1] if printed else "")
    if backend.stand_in_plugin:  # its version is labkit's own: AWS's plugin is not checked here
        return Row(
            PLUGIN,
            WARN if ok else FAIL,
            f"not checked here: the sandbox runs labkit's stand-in for it ({command[-1]}), not AWS's plugin",
            f"before you switch to the aws backend: {PLUGIN_UPDATE} (a version newer than "
            f"{'.'.join(map(str, PLUGIN_NEWER_THAN))})",
        )
    return Row(PLUGIN, PASS if ok else FAIL, detail, "" if ok else "update session-manager-plugin")


def check_cost(backend: Backend, config: LabConfig) -> list[Row]:
    from labkit.lab.cost import plan_cost, running_cost  # pandas, and the Pricing API on AWS

    planned = plan_cost(config)
    billed = "" if not backend.free else " on AWS (the sandbox itself is free)"
    rows = [Row("cost per hour", PASS, f"the lab would cost {planned.headline()}{billed}")]
    running = running_cost(config, backend)
    if running.lines:
        rows.append(
            Row(
                "lab already running",
                WARN,
                f"{config.lab}/{config.learner} already has {len(running.lines)} priced resources here: "
                f"{running.headline()}",
                "apply reuses them; `labkit down` removes them",
            )
        )
    else:
        rows.append(Row("lab already running", PASS, f"nothing of {config.lab}/{config.learner} exists here yet"))
    return rows


def _guarded(check: str, run: Callable[[], Row | Iterable[Row]]) -> list[Row]:
    """Run one check; an unexpected AWS error becomes its fail row, so one broken check never hides the rest."""
    try:
        result = run()
    except UNANSWERED:
        return [_unanswered_row(check, "this call")]
    except LabkitError as exc:
        return [Row(check, FAIL, exc.message, exc.fix or "")]
    except (ClientError, BotoCoreError) as exc:
        return [Row(check, FAIL, f"{error_code(exc) or type(exc).__name__}: {error_message(exc) or exc}", "")]
    return [result] if isinstance(result, Row) else list(result)


def preflight(config: LabConfig | None = None, backend: Backend | None = None) -> Preflight:
    """Check, read-only, that the lab will run: credentials, region, permissions, engine, instance type, AMI,
    quotas, the session plugin, cost, and whether this learner already has a lab here."""
    started = time.monotonic()
    config, backend = lab_and_backend(config, backend)
    check_backend_region(config, backend)
    ctx = LabContext(config, backend)
    identity_row, identity = check_identity(backend)
    rows = [identity_row]
    if identity is not None:
        rows += _guarded("region", lambda: check_region(ctx))
        rows += _guarded("permissions", lambda: check_permissions(backend, config, identity["Arn"]))
        rows += _guarded("engine and DB class", lambda: check_engine(backend, config))
        rows += _guarded("EC2 instance type", lambda: check_instance_type(ctx))
        rows += _guarded("quotas", lambda: check_quotas(backend, config))
    rows += _guarded(PLUGIN, lambda: check_plugin(backend))
    if identity is not None:
        rows += _guarded("cost per hour", lambda: check_cost(backend, config))
    return Preflight(config, backend.name, backend.region, rows, time.monotonic() - started)


def require_preflight(config: LabConfig, backend: Backend) -> Preflight | None:
    """Run the preflight when the backend asks for it before apply; raise PreflightFailed on a fail row."""
    if not backend.preflight_before_apply:
        return None
    report = preflight(config, backend)
    if not report.ok:
        failed = "; ".join(f"{row.check}: {row.detail}" for row in report.failures)
        fixes = " | ".join(row.fix for row in report.failures if row.fix)
        raise PreflightFailed(
            f"nothing was created: the preflight failed ({failed})",
            field="preflight",
            fix=fixes or "see labkit.preflight(config)",
        )
    return report
