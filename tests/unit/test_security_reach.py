"""Reachability on a matrix of cases, each with the expected verdict and the rule that decides it."""

from __future__ import annotations

import pytest
from support.labs import Lab, build_lab

from labkit.errors import LabkitError
from labkit.security import Reachability, can_reach


@pytest.fixture
def lab(region) -> Lab:
    return build_lab(region)


def _reach(lab: Lab, source: str = "instance", destination: str = "writer", port: int = 3306):
    return can_reach(source, destination, port, lab.config, lab.backend)


def _replace_db_rule(lab: Lab, **permission) -> str:
    """Swap the db group's app-group rule for another; returns the new rule's id."""
    lab.ec2.revoke_security_group_ingress(GroupId=lab.db_sg, SecurityGroupRuleIds=[lab.db_rule_id])
    created = lab.ec2.authorize_security_group_ingress(GroupId=lab.db_sg, IpPermissions=[permission])
    return created["SecurityGroupRules"][0]["SecurityGroupRuleId"]


def _tcp(port: int, cidr: str) -> dict:
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}


def _acl_id(lab: Lab) -> str:
    """The VPC's default network ACL (every lab subnet uses it)."""
    acls = lab.ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [lab.vpc_id]}])["NetworkAcls"]
    return acls[0]["NetworkAclId"]


def _hop(verdict, step: str):
    return next(h for h in verdict.hops if h.step == step)


def test_group_reference_allows_the_instance_to_reach_writer_and_reader(lab: Lab) -> None:
    for destination in ("writer", "reader"):
        verdict = _reach(lab, destination=destination)

        assert verdict.reachable, str(verdict)
        ingress = _hop(verdict, "security group ingress")
        assert lab.db_rule_id in ingress.rule
        assert f"from {lab.name('sg-app')}" in ingress.rule
        assert verdict.fix is None


def test_cidr_holding_the_instance_private_ip_allows(lab: Lab) -> None:
    rule_id = _replace_db_rule(lab, **_tcp(3306, f"{lab.private_ip}/32"))

    verdict = _reach(lab)

    assert verdict.reachable, str(verdict)
    assert rule_id in _hop(verdict, "security group ingress").rule


def test_cidr_not_holding_the_instance_ip_blocks_with_a_group_reference_fix(lab: Lab) -> None:
    _replace_db_rule(lab, **_tcp(3306, "192.168.50.0/24"))

    verdict = _reach(lab)

    assert not verdict.reachable
    assert verdict.blocked_by.step == "security group ingress"
    assert "no ingress rule allows tcp 3306" in verdict.blocked_by.rule
    (fix,) = verdict.fixes
    assert fix.calls[0].operation == "authorize_security_group_ingress"
    assert fix.calls[0].params["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == lab.app_sg
    fix.apply(lab.backend)
    assert _reach(lab).reachable


def test_wrong_port_blocks_and_names_the_closest_rule(lab: Lab) -> None:
    rule_id = _replace_db_rule(
        lab, IpProtocol="tcp", FromPort=5432, ToPort=5432, UserIdGroupPairs=[{"GroupId": lab.app_sg}]
    )

    verdict = _reach(lab)

    assert verdict.blocked_by.step == "security group ingress"
    assert f"tcp 5432 from {lab.name('sg-app')} ({rule_id}" in verdict.blocked_by.rule
    assert _reach(lab, port=5432).reachable


def test_egress_removed_blocks_at_the_source_group_and_the_fix_restores_it(lab: Lab) -> None:
    rules = lab.ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [lab.app_sg]}])
    egress = [r["SecurityGroupRuleId"] for r in rules["SecurityGroupRules"] if r["IsEgress"]]
    lab.ec2.revoke_security_group_egress(GroupId=lab.app_sg, SecurityGroupRuleIds=egress)

    verdict = _reach(lab)

    assert verdict.blocked_by.step == "security group egress"
    assert verdict.blocked_by.fix.calls[0].operation == "authorize_security_group_egress"
    verdict.blocked_by.fix.apply(lab.backend)
    assert _reach(lab).reachable


def test_network_acl_deny_blocks_before_the_allow_and_the_fix_goes_first(lab: Lab) -> None:
    lab.ec2.create_network_acl_entry(
        NetworkAclId=_acl_id(lab),
        RuleNumber=50,
        Protocol="6",
        RuleAction="deny",
        Egress=False,
        CidrBlock=f"{lab.private_ip}/32",
        PortRange={"From": 3306, "To": 3306},
    )

    verdict = _reach(lab)

    assert verdict.blocked_by.step == "network ACL inbound"
    assert verdict.blocked_by.rule == f"#50 deny tcp 3306 from {lab.private_ip}/32"
    params = verdict.blocked_by.fix.calls[0].params
    assert (params["RuleNumber"], params["RuleAction"]) == (49, "allow")
    verdict.blocked_by.fix.apply(lab.backend)
    assert _reach(lab).reachable


def test_network_acl_blocking_replies_on_ephemeral_ports_blocks(lab: Lab) -> None:
    lab.ec2.create_network_acl_entry(
        NetworkAclId=_acl_id(lab),
        RuleNumber=60,
        Protocol="6",
        RuleAction="deny",
        Egress=True,
        CidrBlock="0.0.0.0/0",
        PortRange={"From": 32768, "To": 60999},
    )

    verdict = _reach(lab)

    assert verdict.blocked_by.step == "network ACL outbound (reply)"
    assert "#60 deny" in verdict.blocked_by.rule


def test_no_route_to_the_internet_blocks_and_the_fix_adds_it(lab: Lab) -> None:
    assert _reach(lab, "instance", "internet", 443).reachable
    lab.ec2.delete_route(RouteTableId=lab.route_table_id, DestinationCidrBlock="0.0.0.0/0")

    verdict = _reach(lab, "instance", "internet", 443)

    assert verdict.blocked_by.step == "route to the internet"
    assert verdict.blocked_by.fix.calls[0].params["GatewayId"] == lab.gateway_id
    verdict.blocked_by.fix.apply(lab.backend)
    assert _reach(lab, "instance", "internet", 443).reachable


def test_internet_cannot_reach_the_private_writer(lab: Lab) -> None:
    verdict = _reach(lab, "internet", "writer")

    assert verdict.blocked_by.step == "public address"
    assert verdict.blocked_by.rule == "PubliclyAccessible=False"
    assert "connect through the instance" in verdict.blocked_by.fix.caution
    assert _hop(verdict, "route back to the internet").allowed is False  # DB subnets have no gateway route


def test_internet_ssh_to_the_instance_is_blocked_by_its_group(lab: Lab) -> None:
    verdict = _reach(lab, "internet", "instance", 22)

    assert [h.step for h in verdict.hops if not h.allowed] == ["security group ingress"]
    assert _hop(verdict, "public address").allowed


def test_instance_in_another_vpc_is_unreachable_without_peering(region, lab: Lab) -> None:
    other = build_lab(region, database=False)

    verdict = _reach(lab, other.instance_id, "writer")

    assert verdict.blocked_by.step == "VPC peering"
    assert "no active peering" in verdict.blocked_by.rule
    assert verdict.blocked_by.fix.calls == ()  # a manual, multi-step change


def test_peered_vpc_with_routes_and_a_cidr_rule_is_reachable(region, lab: Lab) -> None:
    other = build_lab(region, database=False)
    ec2 = lab.ec2
    peering = ec2.create_vpc_peering_connection(VpcId=other.vpc_id, PeerVpcId=lab.vpc_id)["VpcPeeringConnection"]
    ec2.accept_vpc_peering_connection(VpcPeeringConnectionId=peering["VpcPeeringConnectionId"])
    ec2.authorize_security_group_ingress(GroupId=lab.db_sg, IpPermissions=[_tcp(3306, other.vpc_cidr)])

    blocked = _reach(lab, other.instance_id, "writer")
    assert blocked.blocked_by.step == "route to the peer VPC"
    for fix in blocked.fixes:
        fix.apply(lab.backend)

    assert _reach(lab, other.instance_id, "writer").reachable


def test_snapshot_answers_many_checks_without_calls_and_stays_as_taken(lab: Lab) -> None:
    engine = Reachability.snapshot(lab.backend, lab.config)
    endpoint = engine.facts.clusters[lab.cluster_id].reader_endpoint
    lab.ec2.revoke_security_group_ingress(GroupId=lab.db_sg, SecurityGroupRuleIds=[lab.db_rule_id])

    assert engine.check(lab.instance_id, endpoint, 3306).reachable  # the snapshot predates the revoke
    assert not Reachability.snapshot(lab.backend, lab.config).allows(lab.instance_id, endpoint, 3306)


def test_verdict_renders_as_text_and_markdown(lab: Lab) -> None:
    lab.ec2.revoke_security_group_ingress(GroupId=lab.db_sg, SecurityGroupRuleIds=[lab.db_rule_id])
    verdict = _reach(lab)

    text, markdown = str(verdict), verdict._repr_markdown_()

    assert text.startswith("instance -> writer on tcp 3306: BLOCKED at security group ingress")
    assert "aws ec2 authorize-security-group-ingress" in text
    assert "| **blocked** | security group ingress |" in markdown
    assert "```python\nec2.authorize_security_group_ingress(" in markdown


def test_unknown_endpoint_is_a_labkit_error(lab: Lab) -> None:
    with pytest.raises(LabkitError, match="unknown endpoint"):
        _reach(lab, "instance", "nowhere.example.com")
