"""Cost per hour of what a lab plan would create and of what is running now, in US dollars.

Prices come from a bundled table of public on-demand list prices (labkit/data/prices.json, with its as-of
date). On the aws backend the AWS Pricing API is asked first for instance prices, and the table is the
fallback; every row says where its price came from. Storage and I/O are billed by use, so they are notes,
not hourly rows. The sandbox itself is free: its estimates say what the same lab would cost on AWS.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any

import pandas as pd
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from labkit.aws.backend import Backend, backend_class
from labkit.aws.errors import error_code
from labkit.aws.regions import partition_of
from labkit.config import LabConfig
from labkit.display import literal_html
from labkit.engines import ENGINES, described, engine_of
from labkit.errors import ConfigError, LabkitError
from labkit.lab.graph import deletion_order, lab_graph
from labkit.lab.plan import Plan, check_backend_region
from labkit.lab.resources import LabContext, ResourceType, paginate
from labkit.lab.resources.compute import LIVE_INSTANCE_STATES, Instance
from labkit.lab.resources.database import SERVERLESS_CLASS
from labkit.lab.resources.registry import companions_of

HOURS_PER_DAY = 24
HOURS_PER_MONTH = 730  # AWS's own convention for monthly prices
SERVERLESS_MIN_ACU = 0.5  # the lab's Serverless v2 minimum capacity (labkit.lab.resources.database)
PRICING_REGION = "us-east-1"  # the Pricing API answers in a few regions only; us-east-1 is one
COLUMNS = ["item", "size", "count", "usd_per_hour", "source"]

# Services priced per size (an instance type or class, asked of the Pricing API on AWS): EC2 and each Aurora
# engine's instances. Every other service of the table is priced per unit: by the hour, by the month or by use,
# as the table's section says.
DATABASE_SERVICES = tuple(engine.price_key for engine in ENGINES.values())
SIZED_SERVICES = ("ec2", *DATABASE_SERVICES)
SECTIONS = ("hourly", "monthly", "usage")

NO_PRICE = "no price"
PRICING_API = "AWS Pricing API"
STOPPED = "stopped: no compute charge"
UNBILLED_DB_STATES = frozenset({"stopped", "stopping"})  # a stopped cluster pays for storage only


def _require_text(field_name: str, value: Any, example: str) -> str:
    if not isinstance(value, str):
        raise LabkitError(f"must be text, got {value!r}", field=field_name, fix=f'pass a string such as "{example}"')
    return value.strip()


# ----- the bundled table -----


class PriceTable:
    """The bundled list prices: hourly, monthly and by-use prices per region, with their as-of date."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.as_of: str = data["as_of"]
        self.currency: str = data.get("currency", "USD")
        self.source: str = data.get("source", "")
        self.hours_per_month: int = data.get("hours_per_month", HOURS_PER_MONTH)
        self.unpriced: dict[str, str] = data.get("unpriced", {})  # service -> why the table has no price for it
        self._regions: dict[str, Any] = data["regions"]
        # The last check against public sources: its date and the prices it confirmed (region, section,
        # service, key, price, sources); every other price is as of `as_of` and was not confirmed then.
        checked = data.get("checked", {})
        self.checked_on: str | None = checked.get("date")
        self.confirmed: tuple[dict[str, Any], ...] = tuple(checked.get("confirmed", ()))

    @classmethod
    def load(cls) -> PriceTable:
        """The table shipped in the package (read once; see `default_table`)."""
        text = (resources.files("labkit") / "data" / "prices.json").read_text(encoding="utf-8")
        return cls(json.loads(text))

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(self._regions)

    def region_supported(self, region: str) -> bool:
        return region in self._regions

    @property
    def label(self) -> str:
        """How a row names this table as its source."""
        return f"price table {self.as_of}"

    @cached_property
    def services(self) -> tuple[str, ...]:
        """Every service the table prices in some region, the sized ones first."""
        found = dict.fromkeys(SIZED_SERVICES)
        for prices in self._regions.values():
            for section in SECTIONS:
                found.update(dict.fromkeys(prices.get(section, {})))
        return tuple(found)

    def sizes(self, service: str, region: str) -> frozenset[str]:
        """The sizes the table prices for a sized service (ec2, an Aurora engine's instances) in a region."""
        return frozenset(self._regions.get(region, {}).get("hourly", {}).get(service, {}))

    def hourly(self, service: str, size: str, region: str) -> float | None:
        """USD per hour of one `size` of `service` in `region`; None when the table has no price.

        Sized services take an instance type or class; unit services take a number of units ("8" GiB,
        "2" addresses; "" or the unit's name for one). aurora-io is billed by use and has no hourly price.
        """
        service = _require_text("service", service, "ec2")
        size = _require_text("size", size, "t3.micro")
        region = _require_text("region", region, "us-east-1")
        if service not in self.services:
            fix = f"use one of {', '.join(self.services)}"
            raise ConfigError(f"unknown service {service!r}", field="service", fix=fix)
        prices = self._regions.get(region)
        if prices is None:
            return None
        if service in DATABASE_SERVICES and size == SERVERLESS_CLASS:
            acu = self.hourly("aurora-serverless-acu", "ACU", region)
            return None if acu is None else round(acu * SERVERLESS_MIN_ACU, 6)
        if service in SIZED_SERVICES:
            return prices["hourly"].get(service, {}).get(size)
        section = next((name for name in ("hourly", "monthly") if service in prices.get(name, {})), None)
        if section is None:  # billed by use (aurora-io), or not priced in this region
            return None
        per = 1 if section == "hourly" else self.hours_per_month
        ((unit, price),) = prices[section][service].items()
        quantity = _units(size, unit)
        return None if quantity is None else quantity * price / per

    def confirmation(self, service: str, region: str) -> dict[str, Any] | None:
        """The public sources that confirmed this table's price of `service` in `region` on `checked_on`, or
        None: that price is as of `as_of` and was not confirmed since."""
        return next((c for c in self.confirmed if (c["service"], c["region"]) == (service, region)), None)

    def unit_price(self, service: str, region: str) -> tuple[float, str] | None:
        """The table's price of one unit of a unit or usage service, and the unit it is per (e.g. GiB-month)."""
        prices = self._regions.get(region)
        if prices is None:
            return None
        for section, suffix in (("hourly", "-hour"), ("monthly", "-month"), ("usage", "")):
            if service in prices[section]:
                ((unit, price),) = prices[section][service].items()
                return price, unit + suffix
        return None


def _units(size: str, unit: str) -> float | None:
    """How many units a size text names: "8", "8 GiB", "8GiB"; "" or the unit's name is one."""
    text = size.strip()
    if text in ("", unit):
        return 1.0
    if text.endswith(unit):
        text = text[: -len(unit)].strip()
    try:
        quantity = float(text)
    except ValueError:
        return None
    return quantity if math.isfinite(quantity) and quantity >= 0 else None


@lru_cache(maxsize=1)
def default_table() -> PriceTable:
    """The bundled price table, loaded once per process."""
    return PriceTable.load()


def hourly(service: str, size: str, region: str) -> float | None:
    """USD per hour of one `size` of `service` in `region` from the bundled table; None when it has none."""
    return default_table().hourly(service, size, region)


# ----- the Pricing API -----

_PRICING_QUERIES: dict[str, tuple[str, dict[str, str]]] = {
    "ec2": (
        "AmazonEC2",
        {
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "licenseModel": "No License required",
            "marketoption": "OnDemand",
        },
    ),
    **{engine.price_key: ("AmazonRDS", dict(engine.pricing_filter)) for engine in ENGINES.values()},
}


def pricing_query(service: str, size: str, region: str) -> dict[str, Any] | None:
    """get_products parameters for an instance price (None for what the API is not asked about)."""
    if service not in _PRICING_QUERIES or size == SERVERLESS_CLASS:
        return None
    code, fixed = _PRICING_QUERIES[service]
    terms = {"instanceType": size, "regionCode": region, **fixed}
    filters = [{"Type": "TERM_MATCH", "Field": name, "Value": value} for name, value in terms.items()]
    return {"ServiceCode": code, "Filters": filters, "FormatVersion": "aws_v1", "MaxResults": 20}


def on_demand_hourly(price_list: Iterable[str]) -> float | None:
    """The on-demand USD per hour in a get_products PriceList (JSON strings); None when it holds none.

    Aurora I/O-Optimized offers are skipped (the lab uses Aurora Standard); of several matches the lowest wins.
    """
    found: list[float] = []
    for item in price_list:
        product = json.loads(item) if isinstance(item, str) else item
        if "IOOptimized" in product.get("product", {}).get("attributes", {}).get("usagetype", ""):
            continue
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = float(dimension.get("pricePerUnit", {}).get("USD", "0") or 0)
                if dimension.get("unit", "").lower().startswith("hr") and usd > 0:
                    found.append(usd)
    return min(found) if found else None


@dataclass(frozen=True)
class Price:
    usd_per_hour: float | None
    source: str


class Prices:
    """Where prices come from: the Pricing API when a client is given and answers, else the bundled table."""

    def __init__(self, table: PriceTable | None = None, pricing_client: Any | None = None) -> None:
        self.table = table or default_table()
        self._pricing = pricing_client
        self._cache: dict[tuple[str, str, str], float | None] = {}
        self.notes: list[str] = []
        self.used_api = False

    @classmethod
    def for_backend(cls, backend: Backend | None) -> Prices:
        """On the aws backend, the Pricing API with the table behind it; elsewhere the table alone. Outside the
        aws partition neither knows the prices: the Pricing API endpoint labkit asks (us-east-1) serves the aws
        partition's prices in US dollars, China's are in yuan at its own endpoint, GovCloud has none (botocore's
        endpoints), so nothing is asked there and every row says it has no price."""
        if backend is None or not backend.prices_from_api or partition_of(backend.region) != "aws":
            return cls()
        config = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=10)
        client = backend.session().client("pricing", region_name=PRICING_REGION, config=config)
        return cls(pricing_client=client)

    def price(self, service: str, size: str, region: str) -> Price:
        """The hourly price of one `size`, and which source it came from."""
        from_api = self._ask_api(service, size, region)
        if from_api is not None:
            return Price(from_api, PRICING_API)
        value = self.table.hourly(service, size, region)
        why = self.table.unpriced.get(service)
        if value is None and why and why not in self.notes:
            self.notes.append(why)
        return Price(value, self.table.label if value is not None else NO_PRICE)

    def _ask_api(self, service: str, size: str, region: str) -> float | None:
        query = pricing_query(service, size, region)
        if self._pricing is None or query is None:
            return None
        key = (service, size, region)
        if key not in self._cache:
            try:
                self._cache[key] = on_demand_hourly(self._pricing.get_products(**query).get("PriceList", []))
            except (ClientError, BotoCoreError, ValueError, KeyError) as exc:
                self._pricing = None  # one failure is enough: do not wait on it again for every row
                self.notes.append(f"the AWS Pricing API did not answer ({_reason(exc)}); prices are from the table")
                return None
            if self._cache[key] is None:
                self.notes.append(f"the AWS Pricing API has no {size} in {region}; its price is from the table")
            else:
                self.used_api = True
        return self._cache[key]


def _reason(exc: BaseException) -> str:
    return error_code(exc) or ("error" if isinstance(exc, ClientError) else type(exc).__name__)


# ----- estimates -----


@dataclass(frozen=True)
class CostLine:
    """One row: `count` of `size` at `unit_usd_per_hour` each (None: no price)."""

    item: str
    size: str
    count: int
    unit_usd_per_hour: float | None
    source: str

    @property
    def usd_per_hour(self) -> float | None:
        return None if self.unit_usd_per_hour is None else self.count * self.unit_usd_per_hour


@dataclass
class CostEstimate:
    """Cost per hour of a set of resources: rows, totals per hour, day and month, and where prices came from."""

    title: str
    region: str
    backend: str
    lines: list[CostLine]
    as_of: str
    notes: list[str] = field(default_factory=list)

    @property
    def per_hour(self) -> float:
        """Sum of the priced rows (see `missing` for rows without a price)."""
        return sum(line.usd_per_hour or 0.0 for line in self.lines)

    @property
    def per_day(self) -> float:
        return self.per_hour * HOURS_PER_DAY

    @property
    def per_month(self) -> float:
        return self.per_hour * HOURS_PER_MONTH

    @property
    def missing(self) -> list[str]:
        """Rows the prices do not cover: the totals leave them out."""
        return [f"{line.item} ({line.size})" for line in self.lines if line.usd_per_hour is None]

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_frame(self, *, total: bool = True) -> pd.DataFrame:
        """One row per item (usd_per_hour = count x unit price), and a total row unless `total=False`."""
        rows = [
            {"item": x.item, "size": x.size, "count": x.count, "usd_per_hour": x.usd_per_hour, "source": x.source}
            for x in self.lines
        ]
        if total:
            rows.append({"item": "total", "size": "", "count": None, "usd_per_hour": self.per_hour, "source": ""})
        frame = pd.DataFrame(rows, columns=COLUMNS)
        frame["count"] = frame["count"].astype("Int64")
        frame["usd_per_hour"] = frame["usd_per_hour"].astype(float)
        return frame

    def _display_frame(self) -> pd.DataFrame:
        frame = self.to_frame()
        frame["count"] = [("" if pd.isna(v) else str(v)) for v in frame["count"]]
        return frame

    def headline(self) -> str:
        if self.lines and len(self.missing) == len(self.lines):
            return "no total: none of these has a price here"
        at_least = "at least " if self.missing else ""
        return (
            f"{at_least}${self.per_hour:.4f} per hour, ${self.per_day:.2f} per day, "
            f"${self.per_month:.2f} per month ({HOURS_PER_MONTH} h)"
        )

    def footnotes(self) -> list[str]:
        notes = list(self.notes)
        if self.missing:
            notes.append(f"no price for {', '.join(self.missing)}: the totals leave them out")
        return notes

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "region": self.region,
            "backend": self.backend,
            "as_of": self.as_of,
            "per_hour": self.per_hour,
            "per_day": self.per_day,
            "per_month": self.per_month,
            "lines": [{**dataclasses.asdict(line), "usd_per_hour": line.usd_per_hour} for line in self.lines],
            "notes": self.footnotes(),
        }

    def __str__(self) -> str:
        head = f"{self.title} in {self.region}, USD, list prices as of {self.as_of} (approximate)"
        table = self._display_frame().to_string(index=False, formatters=_FORMATTERS)
        return "\n".join([head, table, self.headline(), *(f"- {note}" for note in self.footnotes())])

    __repr__ = __str__  # a terminal or a notebook's text view shows the table, not the dataclass fields

    def _repr_html_(self) -> str:
        table = self._display_frame().to_html(index=False, formatters=_FORMATTERS)
        head = html.escape(f"{self.title} in {self.region}, USD, list prices as of {self.as_of} (approximate)")
        notes = "".join(f"<li>{html.escape(note)}</li>" for note in self.footnotes())
        return literal_html(f"<p><b>{head}</b></p>{table}<p>{html.escape(self.headline())}</p><ul>{notes}</ul>")


_FORMATTERS: dict[str, Any] = {
    "usd_per_hour": lambda v: NO_PRICE if pd.isna(v) else f"{v:.4f}",
}


def _usd(value: float) -> str:
    """$0.10, $0.0952: up to four decimals, at least two."""
    text = f"{value:.4f}".rstrip("0")
    return "$" + text + "0" * max(0, 2 - len(text.split(".")[1]))


def _usage_notes(table: PriceTable, region: str) -> list[str]:
    """Storage and I/O: billed by use, so stated as prices, not hourly rows."""
    parts = []
    for service, what in (("aurora-storage", "Aurora storage"), ("aurora-io", "Aurora I/O")):
        price = table.unit_price(service, region)
        if price is not None:
            parts.append(f"{what} {_usd(price[0])} per {price[1]}")
    text = "storage and I/O are billed by use, not by the hour"
    return [f"{text}: {', '.join(parts)}" if parts else text]


BURSTABLE = re.compile(r"^(db\.)?t[0-9][a-z]*\.")  # t3.micro, t4g.small, db.t4g.medium, db.t3.medium


def _burst_notes(sizes: list[str]) -> list[str]:
    """T classes run in unlimited mode by default, on EC2 and on Aurora: CPU used above the baseline for long is
    billed as surplus CPU credits on top of the hourly rate (EC2 User Guide, "Unlimited mode for burstable
    performance instances": $0.05 per vCPU-hour on Linux; Aurora User Guide, "DB instance class types")."""
    burstable = sorted({s for s in sizes if BURSTABLE.match(s)})
    if not burstable:
        return []
    return [
        f"{', '.join(burstable)} {'is a burstable class' if len(burstable) == 1 else 'are burstable classes'} in "
        "unlimited mode: sustained CPU above the baseline (a long benchmark) adds surplus CPU credits, billed per "
        "vCPU-hour on top of these rates"
    ]


def _backend_notes(backend_name: str, region: str, prices: Prices) -> list[str]:
    notes = []
    if backend_class(backend_name).free:
        notes.append(f"the sandbox itself is free: these are what the same resources would cost on AWS in {region}")
    if not prices.table.region_supported(region):
        notes.append(
            (partition_note(region) or f"the price table has no prices for {region} (it covers "
             f"{', '.join(prices.table.regions)})")
            + ("" if prices.used_api else "; rows without a price are left out of the totals")
        )  # fmt: skip
    return notes


def partition_note(region: str) -> str | None:
    """Why a region outside the aws partition has no price here (None inside it)."""
    partition = partition_of(region)
    if partition == "aws":
        return None
    billed = "in yuan (CNY) at its own rates" if partition == "aws-cn" else "at its own rates"
    return (
        f"no price here: {region} is in the {partition} partition, which labkit's price table and the AWS Pricing "
        f"API endpoint it asks do not cover; AWS bills it {billed}: see the pricing pages of that partition"
    )


def _line(prices: Prices, item: str, service: str, size: str, count: int, region: str, label: str = "") -> CostLine:
    price = prices.price(service, size, region)
    source = price.source
    if service in DATABASE_SERVICES and size == SERVERLESS_CLASS and price.usd_per_hour is not None:
        source += f" ({SERVERLESS_MIN_ACU} ACU minimum; more under load)"
    return CostLine(item, label or size, count, price.usd_per_hour, source)


def _check_config(config: Any) -> LabConfig:
    if not isinstance(config, LabConfig):
        raise LabkitError(
            f"must be a LabConfig, got {type(config).__name__}",
            field="config",
            fix="pass LabConfig(...) or LabConfig.load()",
        )
    return config


def priced_counts(kinds: Counter[str]) -> list[tuple[type[ResourceType], int]]:
    """Each priced type with how many of it a lab has (a companion: as many as its owner), in creation order,
    then the companions (what goes with the instance and the cluster)."""
    deletable = deletion_order()
    companions = companions_of(deletable)
    counted = [(cls, kinds[cls.kind]) for cls in reversed(deletable)]
    counted += [(companion, kinds[owner.kind]) for companion, owner in companions.items()]
    return [(cls, count) for cls, count in counted if cls.prices and count]


def plan_cost(config: LabConfig, plan: Plan | None = None, *, prices: Prices | None = None) -> CostEstimate:
    """Cost per hour of the lab as the plan (or, with no plan, the config) would build it. No AWS call
    on the sandbox; on the aws backend the Pricing API is asked first."""
    config = _check_config(config)
    if plan is not None and not isinstance(plan, Plan):
        raise LabkitError(f"must be a Plan, got {type(plan).__name__}", field="plan", fix="pass labkit.plan(config)")
    if plan is not None and plan.config != config:
        raise ConfigError(
            "the plan was made for another config", field="plan", fix="pass the config the plan was made with"
        )
    if prices is None:
        prices = Prices.for_backend(config.make_backend() if backend_class(config.backend).prices_from_api else None)
    kinds = Counter(step.kind for step in plan.steps) if plan else Counter(n.kind for n in lab_graph(config).values())
    region = config.region
    lines = [
        _line(prices, row.item, row.service_for(config), row.size_for(config), row.count(count), region, row.label)
        for resource_type, count in priced_counts(kinds)
        for row in resource_type.prices
        if row.count(count)
    ]
    instances = kinds[Instance.kind]
    notes = _backend_notes(config.backend, region, prices) + prices.notes + _usage_notes(prices.table, region)
    notes += _burst_notes([line.size for line in lines])
    if config.vpc != "create" and instances:
        notes.append("the public IPv4 row assumes the existing public subnet gives instances a public address")
    title = f"cost of the plan for {config.lab}/{config.learner}"
    return CostEstimate(title, region, config.backend, lines, prices.table.as_of, notes)


def running_cost(config: LabConfig, backend: Backend | None = None, *, prices: Prices | None = None) -> CostEstimate:
    """Cost per hour of the lab resources that exist now (stopped instances cost only their volumes)."""
    config = _check_config(config)
    if backend is not None and not isinstance(backend, Backend):
        raise LabkitError(
            f"must be a Backend, got {type(backend).__name__}", field="backend", fix="pass config.make_backend()"
        )
    backend = backend or config.make_backend()
    check_backend_region(config, backend)
    prices = prices or Prices.for_backend(backend)
    ctx = LabContext(config, backend)
    instances = _lab_instances(ctx)
    lines = _database_lines(ctx, prices) + _instance_lines(ctx, prices, instances) + _volume_lines(ctx, prices)
    lines += _address_lines(ctx, prices, {i["PublicIpAddress"] for i in instances if i.get("PublicIpAddress")})
    notes = (
        _backend_notes(backend.name, config.region, prices) + prices.notes + _usage_notes(prices.table, config.region)
    )
    notes += _burst_notes([line.size for line in lines])
    if not lines:
        notes.insert(0, "nothing of this lab exists: it costs nothing now")
    title = f"cost of what runs now for {config.lab}/{config.learner}"
    return CostEstimate(title, config.region, backend.name, lines, prices.table.as_of, notes)


def _database_lines(ctx: LabContext, prices: Prices) -> list[CostLine]:
    rds, region, lines = ctx.client("rds"), ctx.config.region, []
    for instance in paginate(rds, "describe_db_instances", "DBInstances"):
        if not ctx.is_ours(instance.get("TagList")):
            continue
        status, size = instance.get("DBInstanceStatus", ""), instance["DBInstanceClass"]
        item = f"Aurora instance {ctx.node_of(instance.get('TagList'))} ({status})"
        if status in UNBILLED_DB_STATES:
            lines.append(CostLine(item, size, 1, 0.0, f"{status}: no instance charge"))
        else:
            engine = described(instance.get("Engine")) or engine_of(ctx.config)
            lines.append(_line(prices, item, engine.price_key, size, 1, region))
    for cluster in paginate(rds, "describe_db_clusters", "DBClusters"):
        if ctx.is_ours(cluster.get("TagList")) and cluster.get("MasterUserSecret"):
            lines.append(_line(prices, "Secrets Manager secret (master password)", "secret", "secret", 1, region))
    return lines


def _lab_instances(ctx: LabContext) -> list[dict[str, Any]]:
    filters = [*ctx.filters(), {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
    reservations = paginate(ctx.client("ec2"), "describe_instances", "Reservations", Filters=filters)
    return [i for r in reservations for i in r["Instances"] if ctx.is_ours(i.get("Tags"))]


def _instance_lines(ctx: LabContext, prices: Prices, instances: list[dict[str, Any]]) -> list[CostLine]:
    lines = []
    for instance in instances:
        state, size = instance["State"]["Name"], instance["InstanceType"]
        item = f"EC2 instance {instance['InstanceId']} ({state})"
        if state in ("pending", "running"):
            lines.append(_line(prices, item, "ec2", size, 1, ctx.config.region))
        else:
            lines.append(CostLine(item, size, 1, 0.0, STOPPED))
        if instance.get("PublicIpAddress"):
            lines.append(_line(prices, "public IPv4 address", "public-ipv4", "address", 1, ctx.config.region))
    return lines


def _volume_lines(ctx: LabContext, prices: Prices) -> list[CostLine]:
    volumes = paginate(ctx.client("ec2"), "describe_volumes", "Volumes", Filters=ctx.filters())
    lines = []
    for volume in volumes:
        if ctx.is_ours(volume.get("Tags")):
            kind, size = volume.get("VolumeType", "standard"), volume["Size"]
            service = f"ebs-{kind}"
            if service in prices.table.services:
                lines.append(
                    _line(prices, f"EBS {kind} volume", service, str(size), 1, ctx.config.region, f"{size} GiB")
                )
            else:
                lines.append(CostLine(f"EBS {kind} volume", f"{size} GiB", 1, None, NO_PRICE))
    return lines


def _address_lines(ctx: LabContext, prices: Prices, counted: set[str]) -> list[CostLine]:
    """Elastic IPs tagged with the lab and not already counted on an instance (the lab makes none)."""
    addresses = ctx.client("ec2").describe_addresses(Filters=ctx.filters())["Addresses"]
    return [
        _line(prices, f"Elastic IP {a.get('PublicIp', '')}", "public-ipv4", "address", 1, ctx.config.region)
        for a in addresses
        if ctx.is_ours(a.get("Tags")) and a.get("PublicIp") not in counted
    ]
