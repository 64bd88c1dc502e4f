"""Do N labs fit in the account's quotas in this region? The arithmetic, for one lab's preflight and a class's check.

Each limit comes from the best source that answers, and the report says which: Service Quotas (the
applied value, then the AWS default), then the service's own account attributes (RDS
DescribeAccountAttributes, EC2 vpc-max-elastic-ips), then the default AWS documents. Usage is counted
with describe calls. When VPCs run short the report suggests the default-VPC or shared-VPC setting.
The instructor's `class_check` (labkit.classroom.quotas) asks this for a whole class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from labkit.aws.backend import Backend
from labkit.config import LabConfig
from labkit.lab.plan import check_backend_region
from labkit.lab.resources import paginate

STANDARD_FAMILIES = tuple("acdhimrtz")  # "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"
# moto in-process raises NotImplementedError; the moto server answers 500 with HTML (ResponseParserError)
UNAVAILABLE = (ClientError, BotoCoreError, NotImplementedError, ResponseParserError)
QUOTA_COLUMNS = ["resource", "per_lab", "needed", "in_use", "limit", "available", "fits", "source"]


@dataclass(frozen=True)
class Quota:
    """One account limit the lab runs into, with its Service Quotas code and the documented default."""

    resource: str
    service: str
    code: str
    default: float
    default_note: str = "AWS docs"


QUOTAS = (
    Quota("VPCs per region", "vpc", "L-F678F1CE", 5),
    Quota("Internet gateways per region", "vpc", "L-A4707A72", 5),
    Quota("Aurora DB clusters", "rds", "L-952B80B8", 40),
    Quota("DB instances", "rds", "L-7B6409FD", 40),
    Quota(
        "On-Demand standard vCPUs", "ec2", "L-1216C47A", 5, "assumed: new accounts start low; AWS raises it with use"
    ),
    Quota("Elastic IPs", "ec2", "L-0263D0A3", 5),
)
RDS_ATTRIBUTES = {"L-952B80B8": "DBClusters", "L-7B6409FD": "DBInstances"}
DOCUMENTED = "documented default"  # the source of a limit nothing in the account confirmed


@dataclass(frozen=True)
class QuotaLine:
    """What N labs need of one quota, what is used already, and the limit with its source."""

    resource: str
    per_lab: int
    needed: int
    in_use: int
    limit: int
    available: int
    fits: bool
    source: str

    @property
    def confirmed(self) -> bool:
        """Whether a source confirmed the limit (Service Quotas, account attributes), not just AWS's docs."""
        return not self.source.startswith(DOCUMENTED)


@dataclass
class QuotaReport:
    """The quota check for a class: one line per limit, and what to do about any that is short."""

    learners: int
    region: str
    lines: list[QuotaLine]
    suggestions: list[str]

    @property
    def ok(self) -> bool:
        return all(line.fits for line in self.lines)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(line) for line in self.lines], columns=QUOTA_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "learners": self.learners,
            "region": self.region,
            "ok": self.ok,
            "quotas": [asdict(line) for line in self.lines],
            "suggestions": self.suggestions,
        }

    def __str__(self) -> str:
        verdict = "fits" if self.ok else "does NOT fit"
        head = f"{self.learners} labs in {self.region}: {verdict}"
        return "\n".join([head, self.to_frame().to_string(index=False), *(f"- {s}" for s in self.suggestions)])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{s}</li>" for s in self.suggestions)
        verdict = "fits" if self.ok else "does <b>not</b> fit"
        return f"<p>{self.learners} labs in {self.region}: {verdict}</p>{self.to_frame().to_html(index=False)}<ul>{items}</ul>"


# ----- limits -----


def _service_quota(backend: Backend, quota: Quota) -> tuple[float, str] | None:
    client = backend.client("service-quotas")
    for call, label in (("get_service_quota", "applied"), ("get_aws_default_service_quota", "AWS default")):
        try:
            value = getattr(client, call)(ServiceCode=quota.service, QuotaCode=quota.code)["Quota"]["Value"]
            return float(value), f"Service Quotas ({label}, {quota.service} {quota.code})"
        except UNAVAILABLE:
            continue
    return None


def _account_attribute(backend: Backend, quota: Quota) -> tuple[float, str] | None:
    try:
        if quota.code in RDS_ATTRIBUTES:
            quotas = backend.client("rds").describe_account_attributes()["AccountQuotas"]
            found = [q["Max"] for q in quotas if q["AccountQuotaName"] == RDS_ATTRIBUTES[quota.code]]
            return (float(found[0]), "RDS DescribeAccountAttributes") if found else None
        if quota.code == "L-0263D0A3":
            reply = backend.client("ec2").describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])
            values = [v["AttributeValue"] for a in reply["AccountAttributes"] for v in a["AttributeValues"]]
            return (float(values[0]), "EC2 DescribeAccountAttributes (vpc-max-elastic-ips)") if values else None
    except UNAVAILABLE:
        return None
    return None


def quota_limit(backend: Backend, quota: Quota) -> tuple[int, str]:
    """The limit and where it came from: Service Quotas, the service's account attributes, or the docs."""
    found = _service_quota(backend, quota) or _account_attribute(backend, quota)
    if found is None:
        return int(quota.default), f"{DOCUMENTED} ({quota.default_note})"
    return int(found[0]), found[1]


# ----- usage and needs -----


def _is_standard(instance_type: str) -> bool:
    return instance_type[:1].lower() in STANDARD_FAMILIES


def _vcpus(backend: Backend, instance_type: str) -> int:
    info = backend.client("ec2").describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
    return int(info[0]["VCpuInfo"]["DefaultVCpus"]) if info else 0


def _running_standard_vcpus(backend: Backend) -> int:
    """vCPUs of the running standard instances: each one's CpuOptions, else its type's default (an instance
    described without CpuOptions, as moto's are, counted 1 where a t3.micro has 2)."""
    ec2 = backend.client("ec2")
    filters = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    total, defaults = 0, {}
    for reservation in paginate(ec2, "describe_instances", "Reservations", Filters=filters):
        for instance in reservation["Instances"]:
            kind = instance["InstanceType"]
            if not _is_standard(kind):
                continue
            cpu = instance.get("CpuOptions")
            if cpu:
                total += int(cpu.get("CoreCount", 1)) * int(cpu.get("ThreadsPerCore", 1))
            else:
                total += defaults.setdefault(kind, _vcpus(backend, kind))
    return total


def in_use(backend: Backend) -> dict[str, int]:
    """How much of each quota the account uses now in the backend's region."""
    ec2, rds = backend.client("ec2"), backend.client("rds")
    return {
        "L-F678F1CE": len(paginate(ec2, "describe_vpcs", "Vpcs")),
        "L-A4707A72": len(paginate(ec2, "describe_internet_gateways", "InternetGateways")),
        "L-952B80B8": len(paginate(rds, "describe_db_clusters", "DBClusters")),
        "L-7B6409FD": len(paginate(rds, "describe_db_instances", "DBInstances")),
        "L-1216C47A": _running_standard_vcpus(backend),
        "L-0263D0A3": len(ec2.describe_addresses()["Addresses"]),
    }


def per_lab(backend: Backend, config: LabConfig) -> dict[str, int]:
    """What one lab of this config takes of each quota (its public address is not an Elastic IP)."""
    own_vpc = 1 if config.vpc == "create" else 0
    vcpus = _vcpus(backend, config.instance_type) if _is_standard(config.instance_type) else 0
    return {
        "L-F678F1CE": own_vpc,
        "L-A4707A72": own_vpc,
        "L-952B80B8": 1,
        "L-7B6409FD": 1 + config.readers,
        "L-1216C47A": vcpus,
        "L-0263D0A3": 0,
    }


# ----- advice -----


def _advice(line: QuotaLine, quota: Quota, backend: Backend, config: LabConfig) -> str:
    short = f"{line.resource}: {line.needed} needed, {line.available} left"
    increase = f"ask for more in Service Quotas ({quota.service} {quota.code})"
    if quota.code in ("L-F678F1CE", "L-A4707A72"):
        default = backend.client("ec2").describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        use_default = f"vpc = 'default' (every lab in the default VPC {default[0]['VpcId']})" if default else ""
        shared = "vpc = '<vpc-id>' (one VPC shared by the class)"
        options = " or ".join(o for o in (use_default, shared) if o)
        return f"{short}. Set {options} in the class's lab config: then no lab makes a VPC. Or {increase}."
    if quota.code == "L-7B6409FD" and config.readers:
        labs = line.needed // (1 + config.readers)
        fewer = f"{config.readers} DB instance{'s' if config.readers > 1 else ''} per lab fewer, {config.readers * labs} in all"
        return f"{short}. Use readers = 0 ({fewer}), or {increase}."
    if quota.code == "L-1216C47A":
        return f"{short}. Choose a smaller instance_type, or {increase}."
    return f"{short}. {increase[0].upper()}{increase[1:]}, or split the class across regions."


def quota_report(labs: int, config: LabConfig, backend: Backend) -> QuotaReport:
    """Compare what `labs` labs of `config` need with the quotas of the account in the backend's region."""
    check_backend_region(config, backend)
    used, needs = in_use(backend), per_lab(backend, config)
    lines, suggestions = [], []
    for quota in QUOTAS:
        limit, source = quota_limit(backend, quota)
        needed = needs[quota.code] * labs
        available = max(limit - used[quota.code], 0)
        line = QuotaLine(
            quota.resource, needs[quota.code], needed, used[quota.code], limit, available, needed <= available, source
        )
        lines.append(line)
        if not line.fits:
            suggestions.append(_advice(line, quota, backend, config))
    if not _is_standard(config.instance_type):
        suggestions.append(f"{config.instance_type} counts against another vCPU quota, not checked here")
    return QuotaReport(labs, backend.region, lines, suggestions)
