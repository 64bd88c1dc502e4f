"""The security lint: silent on the default lab, each check triggered by a crafted resource, fixes work."""

from __future__ import annotations

import pytest
from support.labs import Lab, build_lab

from labkit.aws.tags import lab_tags
from labkit.security import lint


@pytest.fixture
def lab(region) -> Lab:
    return build_lab(region)


def _ingress(lab: Lab, group_id: str, protocol: str, port: int | None, cidr: str) -> None:
    permission: dict = {"IpProtocol": protocol}
    if port is not None:
        permission.update(FromPort=port, ToPort=port)
    ranges = {"Ipv6Ranges": [{"CidrIpv6": cidr}]} if ":" in cidr else {"IpRanges": [{"CidrIp": cidr}]}
    lab.ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{**permission, **ranges}])


def _only(lab: Lab, check: str):
    report = lint(lab.config, lab.backend)
    assert report.checks() == {check}, str(report)
    return report


def test_default_lab_has_no_findings(lab: Lab) -> None:
    report = lint(lab.config, lab.backend)

    assert len(report) == 0, str(report)
    assert report.summary().startswith("lint: no findings (2 groups, 1 instances, 2 DB instances")


def test_groups_without_their_instance_and_cluster_yet_are_not_unused(region) -> None:
    network_only = build_lab(region, database=False, instance=False)

    assert len(lint(network_only.config, network_only.backend)) == 0


@pytest.mark.parametrize(
    ("protocol", "port", "cidr", "text"),
    [
        ("tcp", 22, "0.0.0.0/0", "SSH (22) open to the internet"),
        ("tcp", 3306, "::/0", "MySQL (3306) open to the internet"),
        ("-1", None, "0.0.0.0/0", "all ports open to the internet"),
    ],
)
def test_world_open_rules_are_high_and_the_fix_revokes_them(lab: Lab, protocol, port, cidr, text) -> None:
    _ingress(lab, lab.app_sg, protocol, port, cidr)

    report = _only(lab, "world-open")
    finding = report[0]
    assert (finding.severity, finding.resource) == ("high", f"{lab.name('sg-app')} ({lab.app_sg})")
    assert text in finding.finding
    assert finding.fix.calls[0].operation == "revoke_security_group_ingress"

    finding.fix.apply(lab.backend)
    assert len(lint(lab.config, lab.backend)) == 0


def test_mysql_by_cidr_is_medium_and_the_fix_swaps_in_the_group(lab: Lab) -> None:
    _ingress(lab, lab.db_sg, "tcp", 3306, "10.0.0.0/8")

    finding = _only(lab, "mysql-by-cidr")[0]

    assert finding.severity == "medium"
    assert "revoke_security_group_ingress" in finding.fix.python()


def test_ssh_wider_than_one_address_is_medium(lab: Lab) -> None:
    _ingress(lab, lab.app_sg, "tcp", 22, "203.0.113.0/24")

    finding = _only(lab, "ssh-wide")[0]

    assert finding.severity == "medium"
    assert "203.0.113.0/24" in finding.finding


def test_ssh_from_one_address_is_fine(lab: Lab) -> None:
    _ingress(lab, lab.app_sg, "tcp", 22, "203.0.113.7/32")

    assert len(lint(lab.config, lab.backend)) == 0


def test_db_group_that_does_not_allow_the_app_group_is_high_and_fixable(lab: Lab) -> None:
    lab.ec2.revoke_security_group_ingress(GroupId=lab.db_sg, SecurityGroupRuleIds=[lab.db_rule_id])

    finding = _only(lab, "db-group-missing-app")[0]
    assert finding.severity == "high"
    assert finding.fix.calls[0].params["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == lab.app_sg

    finding.fix.apply(lab.backend)
    assert len(lint(lab.config, lab.backend)) == 0


def test_publicly_accessible_db_instance_is_high(lab: Lab) -> None:
    lab.rds.modify_db_instance(DBInstanceIdentifier=lab.reader, PubliclyAccessible=True, ApplyImmediately=True)

    finding = _only(lab, "db-public")[0]

    assert (finding.severity, finding.resource) == ("high", lab.reader)
    assert "--no-publicly-accessible" in finding.fix.cli()


def test_unencrypted_cluster_storage_is_medium(region) -> None:
    lab = build_lab(region, encrypted=False)

    finding = _only(lab, "storage-unencrypted")[0]

    assert (finding.severity, finding.resource) == ("medium", lab.cluster_id)
    assert finding.fix.calls == ()  # a manual change: encryption cannot be turned on in place


def test_imdsv1_allowed_is_high_and_fixable(region) -> None:
    lab = build_lab(region, http_tokens="optional")

    finding = _only(lab, "imdsv1")[0]
    assert finding.severity == "high"

    finding.fix.apply(lab.backend)
    assert len(lint(lab.config, lab.backend)) == 0


def test_unused_lab_group_is_low(lab: Lab) -> None:
    stray = lab.ec2.create_security_group(
        GroupName=lab.name("sg-old"),
        Description="left over",
        VpcId=lab.vpc_id,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": lab_tags(lab.config.lab, lab.config.learner, "sg-old")}
        ],
    )["GroupId"]

    finding = _only(lab, "unused-group")[0]

    assert (finding.severity, finding.resource) == ("low", f"{lab.name('sg-old')} ({stray})")
    assert finding.fix.calls[0].params == {"GroupId": stray}


def test_report_renders_as_text_and_html(lab: Lab) -> None:
    _ingress(lab, lab.app_sg, "tcp", 22, "0.0.0.0/0")
    report = lint(lab.config, lab.backend)

    assert str(report).splitlines()[0] == "lint: 1 high"
    assert "aws ec2 revoke-security-group-ingress" in str(report)
    assert report._repr_html_() == report._repr_html_()
    assert list(report.frame().columns) == ["severity", "check", "resource", "finding", "fix", "change"]
