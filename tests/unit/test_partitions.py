"""Outside the aws partition (China, GovCloud): what differs there, checked on in-process moto (issue 25, item 14).

- VPC endpoint service names: most services in China are `cn.com.amazonaws.REGION.SERVICE` (AWS in China, Amazon
  VPC: its endpoint services), so a readiness check that looked only for `com.amazonaws.` found none there.
- Prices: labkit's table and the Pricing API endpoint it asks (us-east-1, US dollars) cover the aws partition only;
  China bills in yuan, GovCloud at its own rates. There a cost is "no price", never a price of another partition.
"""

from __future__ import annotations

import pytest
from support.backends import InProcessBackend

from labkit.access.tunnel.readiness import SSM_SERVICES, _ssm_vpc_endpoints
from labkit.config import LabConfig
from labkit.lab.cost import NO_PRICE, PRICING_REGION, Prices, plan_cost


@pytest.mark.parametrize(("region", "prefix"), [("cn-north-1", "cn.com.amazonaws"), ("us-east-1", "com.amazonaws")])
def test_ssm_endpoints_are_found_under_the_partitions_own_names(fast_moto, region, prefix) -> None:
    from moto import mock_aws

    with mock_aws():
        backend = InProcessBackend.make(region)
        ec2 = backend.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
        for service in SSM_SERVICES:
            ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"{prefix}.{region}.{service}", VpcEndpointType="Interface")
        ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"{prefix}.{region}.ssm-contacts", VpcEndpointType="Interface")
        assert _ssm_vpc_endpoints(backend, vpc) == set(SSM_SERVICES)
        other = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
        assert _ssm_vpc_endpoints(backend, other) == set()


@pytest.mark.parametrize(("region", "words"), [("cn-north-1", "in yuan (CNY)"), ("us-gov-west-1", "at its own rates")])
def test_outside_the_aws_partition_a_cost_has_no_price_rather_than_a_wrong_one(region, words) -> None:
    estimate = plan_cost(LabConfig(region=region, backend="sandbox"))
    assert estimate.lines and all(line.source == NO_PRICE for line in estimate.lines)
    note = next(n for n in estimate.notes if n.startswith("no price here"))
    assert region in note and words in note


class _Aws:
    """The attributes Prices.for_backend reads of an aws backend."""

    prices_from_api = True

    def __init__(self, region: str) -> None:
        import boto3

        self.region = region
        self._session = boto3.Session(region_name=region, aws_access_key_id="x", aws_secret_access_key="x")

    def session(self):
        return self._session


def test_the_pricing_api_is_asked_only_for_the_aws_partition() -> None:
    """A China or GovCloud account's credentials are not the aws partition's: asking us-east-1 fails after a wait,
    and an answer would be in the wrong currency or rates."""
    for region in ("cn-northwest-1", "us-gov-east-1"):
        assert Prices.for_backend(_Aws(region))._pricing is None, region
    asking = Prices.for_backend(_Aws("eu-west-1"))._pricing
    assert asking is not None and asking.meta.region_name == PRICING_REGION
