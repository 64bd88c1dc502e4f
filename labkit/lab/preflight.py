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
from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.parsers import ResponseParserError

from labkit.aws.actions import OPTIONAL_ACTIONS
from labkit.aws.backend import PLUGIN, PLUGIN_NEWER_THAN, PLUGIN_UPDATE, Backend, plugin_version_check
from labkit.aws.errors import error_code, error_message
from labkit.aws.policies import TAG_DB_CLASS, TAG_INSTANCE_TYPE
from labkit.aws.tags import TAG_LAB, TAG_LEARNER
from labkit.config import LabConfig, lab_and_backend
from labkit.engines import engine_of
from labkit.errors import LabkitError
from labkit.lab.engine import choose_engine
from labkit.lab.inventory import inventory
from labkit.lab.permissions import Caller, Probe, caller_of, simulate
from labkit.lab.plan import check_backend_region, check_region_enabled
from labkit.lab.quotas import quota_report
from labkit.lab.resources import LabContext, paginate
from labkit.lab.resources.compute import ami_parameter, instance_architecture

PASS, WARN, FAIL = "pass", "warn", "fail"
UNANSWERED = (NotImplementedError, ResponseParserError)  # moto in-process, moto's server (an HTML 500)


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


def check_permissions(backend: Backend, config: LabConfig, caller: Caller) -> Row:
    """Simulate every action the workbook needs for the caller (iam:SimulatePrincipalPolicy), with the lab's
    context and the caller's own tags (labkit.lab.permissions)."""
    if caller.principal is None:
        return Row(
            "permissions",
            WARN,
            f"{caller.arn} cannot be simulated (the root user or a federated user)",
            "work as an IAM user or role that holds the labkit learner policies (labkit-learner-*), not as root",
        )
    try:
        result = simulate(backend, config, caller)
    except UNANSWERED:
        return _unanswered_row("permissions", "iam:SimulatePrincipalPolicy (the sandbox grants every action)")
    except ClientError as exc:
        code = error_code(exc)
        if code in ("AccessDenied", "AccessDeniedException", "NoSuchEntity"):
            return Row(
                "permissions",
                WARN,
                f"could not simulate your permissions ({code}): your identity may not call iam:SimulatePrincipalPolicy",
                "ask for iam:SimulatePrincipalPolicy on your own user or role, or check that the labkit learner "
                "policies (labkit-learner-*) are attached; actions that are missing will fail with AccessDenied",
            )
        raise
    every = len(result.actions)
    optional = sorted(action for action in result.missing if action in OPTIONAL_ACTIONS)
    result.missing = {a: probes for a, probes in result.missing.items() if a not in OPTIONAL_ACTIONS}
    if result.denied or result.missing:
        failed = {**result.missing, **result.denied}
        listed = ", ".join(f"{action}{_where(probes)}" for action, probes in sorted(failed.items()))
        what = f"{len(result.denied)} explicitly denied, " if result.denied else ""
        policies = sorted({probe.policy for probes in failed.values() for probe in probes if probe.policy})
        return Row(
            "permissions",
            FAIL,
            f"{what}{len(result.missing)} not granted of {every} actions the workbook needs: {listed}",
            f"the labkit policies that grant them: {', '.join(policies) or 'none of them (a labkit bug)'}; in a class, "
            f"an administrator brings them up to date with `labkit class setup --yes`, else attach them"
            + (" (and remove the deny)" if result.denied else ""),
        )
    if optional:
        return Row(
            "permissions",
            WARN,
            f"{every - len(optional)} of {every} actions allowed; the workbook does without these, less well: "
            f"{', '.join(optional)} (quotas are then assumed from AWS's defaults, prices from the bundled table)",
            "nothing stops the lab; to check the real quotas, bring labkit-learner-read up to date "
            "(`labkit class setup --yes`, by an administrator)",
        )
    if result.unsure:
        keys = sorted({key for missing in result.unsure.values() for key in missing})
        return Row(
            "permissions",
            WARN,
            f"{len(result.allowed)} of {every} actions allowed; {len(result.unsure)} denied for want of context the "
            f"simulation lacked ({', '.join(keys[:6])}): {', '.join(sorted(result.unsure)[:8])}"
            f"{' ...' if len(result.unsure) > 8 else ''}",
            "nothing to do if your policies are labkit's (labkit-learner-*): they use no other context keys",
        )
    return Row(
        "permissions",
        PASS,
        f"all {every} actions the workbook needs are allowed for {caller.principal} ({result.probes} simulated)",
    )


def _where(probes: list[Probe]) -> str:
    named = sorted({probe.resource for probe in probes if probe.resource != "*"})
    return f" (on {named[0]}{' ...' if len(named) > 1 else ''})" if named else ""


def check_guardrails(caller: Caller, config: LabConfig) -> Row:
    """A class learner's identity and cost guardrails, from their own user's tags: the lab and learner their
    resources must carry, the one instance type and DB class the instructor allows them (labkit class learners
    create --instance-type / --db-instance-class); this lab config must match, or its creates are denied."""
    tags = caller.tags or {}
    fields = ((TAG_LAB, "lab"), (TAG_LEARNER, "learner"), (TAG_INSTANCE_TYPE, "instance_type"),
              (TAG_DB_CLASS, "db_instance_class"))  # fmt: skip
    wrong = [
        f"{name} = {tags[key]!r} (this config: {getattr(config, name)!r})"
        for key, name in fields
        if key in tags and tags[key] != getattr(config, name)
    ]
    if wrong:
        return Row(
            "class guardrails",
            FAIL,
            f"your IAM user {caller.user_name} is for {'; '.join(wrong)}: creates that differ are denied",
            "set " + ", ".join(item.split(" (")[0] for item in wrong) + " in the lab config (or the setup form), "
            "or ask your instructor to change your limits (labkit class learners create ... --yes)",
        )
    unset = [key for key in (TAG_INSTANCE_TYPE, TAG_DB_CLASS) if key not in tags]
    if unset:
        return Row(
            "class guardrails",
            WARN,
            f"your IAM user {caller.user_name} has no {' or '.join(unset)} tag: the learner policies deny launches "
            "without them",
            "ask your instructor to run `labkit class learners create` for you again (it adds them)",
        )
    return Row(
        "class guardrails",
        PASS,
        f"your class allows instance type {tags[TAG_INSTANCE_TYPE]} and DB class {tags[TAG_DB_CLASS]}: "
        f"this lab uses them",
    )


def check_engine(backend: Backend, config: LabConfig) -> Row:
    try:
        choice = choose_engine(backend, config)
    except LabkitError as exc:
        return Row("engine and DB class", FAIL, exc.message, exc.fix or "")
    if not choice.checked:
        return Row("engine and DB class", WARN, f"not checked here: {choice.describe()}", "")
    return Row("engine and DB class", PASS, choice.describe())


def check_engine_client(config: LabConfig) -> Row:
    """This machine speaks the lab's engine: its DB-API driver imports, and the benchmark's C path is there (a
    warn without it: the benchmark then takes the pure-Python path)."""
    from labkit.bench.connect import c_path  # the benchmark's modules: only the preflight and a benchmark load them

    engine = engine_of(config)
    dbapi, check = engine.dialect.dbapi, "database driver"
    try:
        driver = f"{dbapi.module} {dbapi.version()}"
    except ImportError:
        return Row(
            check, FAIL, f"{dbapi.module} is not installed", f"pip install '{dbapi.requirement}' (make lab does)"
        )
    fast = c_path(engine).version()
    if fast is None:
        return Row(check, WARN, f"{driver}; no C path: the benchmark adds more client time", "make lab installs it")
    return Row(check, PASS, f"{driver}; the benchmark's C path: {fast}")


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
                "your identity needs ssm:GetParameter on AWS's public AMI parameters (labkit-learner-read)",
            )
        )
        return rows
    rows.append(Row("AMI", PASS, f"{ami} from {parameter}"))
    return rows


def check_quotas(backend: Backend, config: LabConfig) -> Row:
    """What one lab needs of each account quota, against what the account uses (Service Quotas or account
    attributes). A fail needs a limit some source confirmed: a limit only assumed from AWS's documented defaults
    (a learner may not read Service Quotas; a class's instructor has usually raised it) is a warn, never a fail.
    A free backend has no account quotas to check."""
    if backend.free:
        return Row("quotas", WARN, "not checked here: this backend has no account quotas", "")
    report = quota_report(1, config, backend)
    short = [line for line in report.lines if not line.fits]
    confirmed = [line for line in short if line.confirmed]
    assumed = [line.resource for line in report.lines if not line.confirmed]
    if confirmed:
        return Row(
            "quotas",
            WARN if _lab_exists(backend, config) else FAIL,
            "; ".join(f"{line.resource}: needs {line.needed}, {line.available} left ({line.source})" for line in short),
            " ".join(report.suggestions) or "ask for more in the Service Quotas console",
        )
    if short:
        return Row(
            "quotas",
            WARN,
            "may not fit, against limits no source confirmed (AWS's documented defaults): "
            + "; ".join(
                f"{line.resource}: needs {line.needed}, {line.available} left of {line.limit}" for line in short
            ),
            "nothing to do if your account's limits are higher (a class's usually are): your instructor can check with "
            "`labkit class check`; your identity needs servicequotas:GetServiceQuota to read them (labkit-learner-read)",
        )
    if assumed:
        return Row(
            "quotas",
            WARN,
            f"fits, but these limits were assumed from AWS's documented defaults: {', '.join(assumed)}",
            "allow servicequotas:GetServiceQuota to check the real limits (labkit-learner-read)",
        )
    return Row("quotas", PASS, f"fits: {len(report.lines)} quotas checked")


def _lab_exists(backend: Backend, config: LabConfig) -> bool:
    """Whether this learner's lab already has resources here: they count as used, yet apply needs no more."""
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
        caller = caller_of(backend, identity)
        rows += _guarded("permissions", lambda: check_permissions(backend, config, caller))
        if caller.class_learner:
            rows += _guarded("class guardrails", lambda: check_guardrails(caller, config))
        rows += _guarded("engine and DB class", lambda: check_engine(backend, config))
        rows += _guarded("EC2 instance type", lambda: check_instance_type(ctx))
        rows += _guarded("quotas", lambda: check_quotas(backend, config))
    rows += _guarded("database driver", lambda: check_engine_client(config))
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
