"""Cost per hour: the bundled table, plan arithmetic, what runs in moto, and the Pricing API path (Stubber)."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.stub import Stubber

from labkit.aws.backend import FAKE_CREDENTIALS
from labkit.config import LabConfig
from labkit.engines.aurora_mysql import AURORA_MYSQL
from labkit.errors import LabkitError
from labkit.lab import cost
from labkit.lab.apply import apply
from labkit.lab.cost import CostEstimate, Prices, PriceTable, hourly, plan_cost, running_cost
from labkit.lab.plan import plan
from labkit.lab.resources.database import SERVERLESS_CLASS

TABLE_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
EC2_SIZES = [f"{family}.{size}" for family in ("t3", "t4g") for size in ("micro", "small", "medium", "large")]
TABLE = PriceTable.load()


# ----- the table -----


def test_the_table_has_a_date_a_source_and_the_five_regions():
    assert TABLE.as_of[:2] == "20" and len(TABLE.as_of) == 10
    assert "approximate" in TABLE.source
    for region in TABLE_REGIONS:
        assert TABLE.region_supported(region)
    assert not TABLE.region_supported("af-south-1")


def test_the_tables_last_check_is_dated_and_each_confirmed_price_is_the_tables_own():
    """Issue 25 item 16: the table says when it was last checked against public sources and which prices they
    confirmed (each by two pages); a confirmed price that no longer matches the table fails here."""
    assert TABLE.checked_on and TABLE.checked_on > TABLE.as_of
    assert TABLE.confirmed, "the check confirmed some prices"
    for entry in TABLE.confirmed:
        assert TABLE.unit_price(entry["service"], entry["region"])[0] == entry["price"], entry
        assert len(entry["sources"]) >= 2 and all(url.startswith("https://") for url in entry["sources"]), entry
        assert TABLE.confirmation(entry["service"], entry["region"]) == entry
    assert TABLE.confirmation("ec2", "us-east-1") is None, "instance prices were not confirmed: kept, and said so"


@pytest.mark.parametrize("region", TABLE_REGIONS)
def test_every_allowed_aurora_class_and_lab_instance_type_has_a_positive_price(region):
    for db_class in AURORA_MYSQL.instance_classes:
        price = TABLE.hourly(AURORA_MYSQL.price_key, db_class, region)
        assert price is not None and price > 0, db_class
    for instance_type in [*EC2_SIZES, LabConfig().instance_type]:
        price = TABLE.hourly("ec2", instance_type, region)
        assert price is not None and price > 0, instance_type
    for service, size in (("public-ipv4", "address"), ("secret", "secret"), ("ebs-gp3", "8")):
        assert TABLE.hourly(service, size, region) > 0, service
    for service in ("aurora-storage", "aurora-io"):
        assert TABLE.unit_price(service, region)[0] > 0


def test_sizes_within_a_family_double():
    for region in TABLE_REGIONS:
        assert TABLE.hourly("ec2", "t3.small", region) == pytest.approx(2 * TABLE.hourly("ec2", "t3.micro", region))
        large = TABLE.hourly(AURORA_MYSQL.price_key, "db.r6g.large", region)
        assert TABLE.hourly(AURORA_MYSQL.price_key, "db.r6g.xlarge", region) == pytest.approx(2 * large, rel=1e-3)


def test_hourly_reads_the_table_and_converts_monthly_prices():
    data = json.loads((cost.resources.files("labkit") / "data" / "prices.json").read_text())
    region = data["regions"]["eu-west-1"]
    assert hourly("ec2", "t3.micro", "eu-west-1") == region["hourly"]["ec2"]["t3.micro"]
    assert (
        hourly(AURORA_MYSQL.price_key, "db.t4g.medium", "eu-west-1")
        == region["hourly"][AURORA_MYSQL.price_key]["db.t4g.medium"]
    )
    assert hourly("public-ipv4", "address", "eu-west-1") == region["hourly"]["public-ipv4"]["address"]
    assert hourly("secret", "secret", "eu-west-1") == pytest.approx(region["monthly"]["secret"]["secret"] / 730)
    gp3 = region["monthly"]["ebs-gp3"]["GiB"]
    assert hourly("ebs-gp3", "8", "eu-west-1") == pytest.approx(8 * gp3 / 730)
    assert hourly("ebs-gp3", "8 GiB", "eu-west-1") == hourly("ebs-gp3", "8", "eu-west-1")
    acu = region["hourly"]["aurora-serverless-acu"]["ACU"]
    assert hourly(AURORA_MYSQL.price_key, SERVERLESS_CLASS, "eu-west-1") == pytest.approx(cost.SERVERLESS_MIN_ACU * acu)


def test_unknown_region_or_size_has_no_price_rather_than_a_guess():
    assert hourly("ec2", "t3.micro", "af-south-1") is None
    assert hourly("ec2", "t3.nonsense", "us-east-1") is None
    assert hourly(AURORA_MYSQL.price_key, "db.t2.small", "us-east-1") is None
    assert hourly("ebs-gp3", "lots", "us-east-1") is None
    assert hourly("aurora-io", "1", "us-east-1") is None  # billed by use, never per hour


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((1, "t3.micro", "us-east-1"), "service"),
        (("ec2", None, "us-east-1"), "size"),
        (("ec2", "t3.micro", ["us-east-1"]), "region"),
        (("rds", "db.t4g.medium", "us-east-1"), "service"),
    ],
)
def test_bad_arguments_raise_a_labkit_error_naming_the_field(args, field):
    with pytest.raises(LabkitError) as caught:
        hourly(*args)
    assert caught.value.field == field and caught.value.fix


# ----- plan_cost -----


def expected_plan_total(config: LabConfig) -> float:
    """The lab's hourly cost computed here from the table, item by item."""
    region = config.region
    return (
        (1 + config.readers) * TABLE.hourly(AURORA_MYSQL.price_key, config.db_instance_class, region)
        + TABLE.hourly("ec2", config.instance_type, region)
        + TABLE.hourly("public-ipv4", "address", region)
        + TABLE.hourly("secret", "secret", region)
        + TABLE.hourly("ebs-gp3", "8", region)
    )


@pytest.mark.parametrize(
    "config",
    [
        LabConfig(readers=1),
        LabConfig(readers=2, region="eu-central-1", db_instance_class="db.r6g.large", instance_type="t4g.small"),
        LabConfig(readers=0, region="ap-southeast-2"),
    ],
)
def test_plan_cost_adds_up_the_writer_readers_instance_address_secret_and_volume(config):
    estimate = plan_cost(config)
    expected = expected_plan_total(config)
    assert estimate.per_hour == pytest.approx(expected)
    assert estimate.per_day == pytest.approx(expected * 24)
    assert estimate.per_month == pytest.approx(expected * 730)
    frame = estimate.to_frame()
    assert list(frame.columns) == ["item", "size", "count", "usd_per_hour", "source"]
    assert frame.iloc[-1]["item"] == "total" and frame.iloc[-1]["usd_per_hour"] == pytest.approx(expected)
    rows = frame.iloc[:-1]
    assert rows["usd_per_hour"].sum() == pytest.approx(expected)
    db_rows = rows[rows["size"] == config.db_instance_class]
    assert db_rows["count"].sum() == 1 + config.readers
    assert set(rows["source"]) == {f"price table {TABLE.as_of}"}
    assert estimate.complete


def test_plan_cost_without_a_price_says_so_and_totals_only_what_is_priced():
    estimate = plan_cost(LabConfig(instance_type="m8g.medium"))
    rows = estimate.to_frame(total=False)
    missing = rows[rows["source"] == "no price"]
    assert list(missing["item"]) == ["EC2 instance"] and missing["usd_per_hour"].isna().all()
    assert estimate.missing == ["EC2 instance (m8g.medium)"]
    assert estimate.per_hour == pytest.approx(rows["usd_per_hour"].sum())
    assert estimate.headline().startswith("at least $")
    assert "no price" in str(estimate)


def test_plan_cost_in_a_region_the_table_lacks_prices_nothing():
    estimate = plan_cost(LabConfig(region="af-south-1"))
    assert estimate.to_frame(total=False)["usd_per_hour"].isna().all()
    assert estimate.per_hour == 0 and not estimate.complete
    assert "no total" in estimate.headline()
    assert any("no prices for af-south-1" in note for note in estimate.notes)


def test_the_display_names_the_date_region_usage_billing_and_that_the_sandbox_is_free():
    estimate = plan_cost(LabConfig(region="eu-west-1"))
    for text in (str(estimate), estimate._repr_html_()):
        assert TABLE.as_of in text and "eu-west-1" in text
        assert "billed by use" in text and "per million requests" in text
        assert "sandbox itself is free" in text
        assert f"{estimate.per_hour:.4f}" in text


def test_serverless_is_costed_at_its_minimum_capacity_with_a_note():
    config = LabConfig(db_instance_class=SERVERLESS_CLASS, readers=1)
    rows = plan_cost(config).to_frame(total=False)
    writer = rows[rows["item"] == "Aurora writer"].iloc[0]
    assert writer["usd_per_hour"] == pytest.approx(0.5 * TABLE.hourly("aurora-serverless-acu", "ACU", "us-east-1"))
    assert "ACU minimum" in writer["source"]


def test_plan_cost_rejects_what_is_not_a_config_or_plan():
    with pytest.raises(LabkitError) as caught:
        plan_cost({"readers": 1})
    assert caught.value.field == "config"
    with pytest.raises(LabkitError) as caught:
        plan_cost(LabConfig(), plan="the plan")
    assert caught.value.field == "plan"
    with pytest.raises(LabkitError) as caught:
        running_cost(LabConfig(), backend="sandbox")
    assert caught.value.field == "backend"


def test_plan_cost_of_a_read_plan_matches_the_config(strict_backend):
    config = LabConfig(readers=2)
    estimate = plan_cost(config, plan(config, strict_backend))
    assert estimate.per_hour == pytest.approx(expected_plan_total(config))
    with pytest.raises(LabkitError) as caught:
        plan_cost(LabConfig(readers=1), plan(config, strict_backend))
    assert caught.value.field == "plan"


# ----- running_cost against in-process moto -----


def test_nothing_running_costs_nothing(strict_backend):
    estimate = running_cost(LabConfig(), strict_backend)
    assert estimate.lines == [] and estimate.per_hour == 0
    assert "costs nothing" in str(estimate)


def test_running_cost_of_an_applied_lab_then_with_its_instance_stopped(strict_backend):
    config = LabConfig(readers=1)
    ids = apply(config, strict_backend, stream=io.StringIO()).ids
    ec2 = strict_backend.client("ec2")
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [ids["instance"]]}])
    volume_cost = sum(TABLE.hourly(f"ebs-{v['VolumeType']}", str(v["Size"]), "us-east-1") for v in volumes["Volumes"])
    assert volume_cost > 0

    running = running_cost(config, strict_backend)
    compute = 2 * TABLE.hourly(AURORA_MYSQL.price_key, config.db_instance_class, "us-east-1") + TABLE.hourly(
        "ec2", config.instance_type, "us-east-1"
    )
    address = TABLE.hourly("public-ipv4", "address", "us-east-1")
    secret = TABLE.hourly("secret", "secret", "us-east-1")
    assert running.per_hour == pytest.approx(compute + address + secret + volume_cost)
    assert running.complete
    items = list(running.to_frame(total=False)["item"])
    assert f"EC2 instance {ids['instance']} (running)" in items
    assert "public IPv4 address" in items
    assert "sandbox itself is free" in str(running)

    ec2.stop_instances(InstanceIds=[ids["instance"]])
    stopped = running_cost(config, strict_backend)
    rows = stopped.to_frame(total=False)
    instance_row = rows[rows["item"] == f"EC2 instance {ids['instance']} (stopped)"].iloc[0]
    assert instance_row["usd_per_hour"] == 0 and instance_row["source"] == cost.STOPPED
    assert "public IPv4 address" not in set(rows["item"])  # a stopped instance gives its public address back
    db_compute = 2 * TABLE.hourly(AURORA_MYSQL.price_key, config.db_instance_class, "us-east-1")
    assert stopped.per_hour == pytest.approx(db_compute + secret + volume_cost)


def test_running_cost_refuses_a_backend_in_another_region(strict_backend):
    with pytest.raises(LabkitError) as caught:
        running_cost(LabConfig(region="eu-west-1"), strict_backend)
    assert caught.value.field == "region"


# ----- the Pricing API (moto has none: botocore's Stubber stands in) -----


def price_item(instance_type: str, usd: str, usagetype: str = "USE1-BoxUsage") -> str:
    """One PriceList entry as the Pricing API returns it: a JSON document in a string."""
    return json.dumps(
        {
            "product": {"sku": "SKU1", "attributes": {"instanceType": instance_type, "usagetype": usagetype}},
            "terms": {
                "OnDemand": {
                    "SKU1.JRTCKXETXF": {
                        "priceDimensions": {
                            "SKU1.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": usd}},
                        }
                    }
                }
            },
        }
    )


@pytest.fixture
def pricing():
    client = boto3.Session(**FAKE_CREDENTIALS).client("pricing", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect(stubber: Stubber, service: str, size: str, price_list: list[str], region: str = "us-east-1") -> None:
    query = cost.pricing_query(service, size, region)
    stubber.add_response("get_products", {"PriceList": price_list, "FormatVersion": "aws_v1"}, query)


def test_pricing_queries_name_the_instance_region_and_engine():
    ec2 = cost.pricing_query("ec2", "t3.micro", "eu-west-1")
    terms = {f["Field"]: f["Value"] for f in ec2["Filters"]}
    assert ec2["ServiceCode"] == "AmazonEC2"
    assert terms["instanceType"] == "t3.micro" and terms["regionCode"] == "eu-west-1"
    assert terms["operatingSystem"] == "Linux" and terms["tenancy"] == "Shared"
    rds = cost.pricing_query(AURORA_MYSQL.price_key, "db.r6g.large", "eu-west-1")
    assert rds["ServiceCode"] == "AmazonRDS"
    assert {f["Field"]: f["Value"] for f in rds["Filters"]}["databaseEngine"] == "Aurora MySQL"
    assert cost.pricing_query("secret", "secret", "eu-west-1") is None


def test_plan_cost_uses_the_pricing_api_when_it_answers(pricing):
    client, stubber = pricing
    io_optimized = price_item("db.t4g.medium", "0.0949", usagetype="USE1-InstanceUsageIOOptimized:db.t4g.medium")
    expect(
        stubber, AURORA_MYSQL.price_key, "db.t4g.medium", [io_optimized, price_item("db.t4g.medium", "0.0730000000")]
    )
    expect(stubber, "ec2", "t3.micro", [price_item("t3.micro", "0.0104000000")])
    config = LabConfig(readers=2, backend="aws")
    estimate = plan_cost(config, prices=Prices(pricing_client=client))
    rows = estimate.to_frame(total=False).set_index("item")
    assert rows.loc["Aurora writer", "usd_per_hour"] == pytest.approx(0.073)
    assert rows.loc["Aurora readers", "usd_per_hour"] == pytest.approx(2 * 0.073)  # asked once, cached
    assert rows.loc["EC2 instance", "usd_per_hour"] == pytest.approx(0.0104)
    assert rows.loc["EC2 instance", "source"] == cost.PRICING_API
    assert rows.loc["public IPv4 address", "source"] == f"price table {TABLE.as_of}"
    assert "sandbox" not in str(estimate)


def test_the_pricing_api_price_wins_over_the_table(pricing):
    client, stubber = pricing
    expect(stubber, "ec2", "t3.micro", [price_item("t3.micro", "0.5")])
    assert Prices(pricing_client=client).price("ec2", "t3.micro", "us-east-1") == cost.Price(0.5, cost.PRICING_API)


def test_when_the_pricing_api_fails_the_table_is_used_and_the_note_says_so(pricing):
    client, stubber = pricing
    query = cost.pricing_query(AURORA_MYSQL.price_key, "db.t4g.medium", "us-east-1")
    stubber.add_client_error("get_products", "AccessDeniedException", "not authorized", expected_params=query)
    config = LabConfig(readers=1, backend="aws")
    prices = Prices(pricing_client=client)
    estimate = plan_cost(config, prices=prices)  # one failure: the API is not asked again for the EC2 row
    assert estimate.per_hour == pytest.approx(expected_plan_total(config))
    assert set(estimate.to_frame(total=False)["source"]) == {f"price table {TABLE.as_of}"}
    assert any("Pricing API did not answer (AccessDeniedException)" in note for note in estimate.notes)


def test_an_empty_answer_falls_back_for_that_row_only(pricing):
    client, stubber = pricing
    expect(stubber, AURORA_MYSQL.price_key, "db.t4g.medium", [])
    expect(stubber, "ec2", "t3.micro", [price_item("t3.micro", "0.0111")])
    estimate = plan_cost(LabConfig(readers=0, backend="aws"), prices=Prices(pricing_client=client))
    rows = estimate.to_frame(total=False).set_index("item")
    assert rows.loc["Aurora writer", "source"] == f"price table {TABLE.as_of}"
    assert rows.loc["EC2 instance", "source"] == cost.PRICING_API
    assert any("has no db.t4g.medium in us-east-1" in note for note in estimate.notes)


def test_on_demand_hourly_reads_a_real_shaped_price_list():
    assert cost.on_demand_hourly([price_item("t3.micro", "0.0104000000")]) == pytest.approx(0.0104)
    assert cost.on_demand_hourly([price_item("t3.micro", "0.0000000000")]) is None
    assert cost.on_demand_hourly([]) is None


def test_the_estimate_is_a_cost_estimate_with_a_serialisable_dict():
    estimate = plan_cost(LabConfig())
    assert isinstance(estimate, CostEstimate)
    data = json.loads(json.dumps(estimate.to_dict()))
    assert data["as_of"] == TABLE.as_of and data["per_hour"] == pytest.approx(estimate.per_hour)
    assert [line["item"] for line in data["lines"]] == list(estimate.to_frame(total=False)["item"])


def test_dollar_amounts_in_the_notebook_view_are_not_typeset_as_math():
    """JupyterLab's MathJax turns "$0.16 per hour, $3.91 per day" into italic math unless told not to."""
    rendered = plan_cost(LabConfig())._repr_html_()
    assert "$" in rendered
    assert rendered.startswith('<div class="mathjax_ignore">') and rendered.endswith("</div>")


def test_burstable_classes_carry_a_note_about_surplus_cpu_credits():
    from labkit.lab.cost import _burst_notes

    [note] = _burst_notes(["db.t4g.medium", "t3.micro", "db.r6g.large", "t3.micro"])
    assert note.startswith("db.t4g.medium, t3.micro are burstable classes") and "vCPU-hour" in note
    assert _burst_notes(["db.r6g.large", "m7g.large"]) == []


def test_the_default_instance_type_is_not_promised_free():
    """Issue 25, item 13: free-tier eligibility depends on the account and its plan (AWS changed the Free Tier in
    2025), and a T instance runs in unlimited mode, which the cost note says; the wording promised "free"."""
    from labkit.config import LabConfig
    from labkit.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        LabConfig(instance_type="t3.mikro")
    assert "free-tier eligible)" not in (caught.value.fix or "") and "depends on your account" in (
        caught.value.fix or ""
    )
