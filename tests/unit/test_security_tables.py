"""Security-group rules as a table: shape, readable values, styling."""

from __future__ import annotations

import pytest
from support.labs import Lab, build_lab

from labkit.errors import LabkitError
from labkit.security import security_groups, style_rules
from labkit.security.tables import COLUMNS


@pytest.fixture
def lab(region) -> Lab:
    return build_lab(region, database=False, instance=False)


def _add(lab: Lab, group_id: str, **permission) -> None:
    lab.ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[permission])


def test_one_row_per_rule_with_readable_values(lab: Lab) -> None:
    frame = security_groups(lab.config, lab.backend)

    assert list(frame.columns) == COLUMNS
    assert len(frame) == 3  # app egress, db ingress from app, db egress
    db_in = frame[(frame.group == lab.name("sg-db")) & (frame.direction == "ingress")].iloc[0]
    assert (db_in.protocol, db_in.ports, db_in.peer) == ("tcp", "3306", lab.name("sg-app"))
    assert db_in.group_id == lab.db_sg
    assert db_in.description == "MySQL from the app tier"
    assert db_in.rule_id == lab.db_rule_id
    assert db_in.risk == ""
    app_out = frame[frame.group == lab.name("sg-app")].iloc[0]
    assert (app_out.direction, app_out.protocol, app_out.ports, app_out.peer) == (
        "egress",
        "all",
        "all",
        "0.0.0.0/0",
    )


def test_port_ranges_protocols_and_risks_read_as_people_say_them(lab: Lab) -> None:
    _add(lab, lab.app_sg, IpProtocol="tcp", FromPort=1024, ToPort=65535, IpRanges=[{"CidrIp": "10.9.0.0/16"}])
    _add(lab, lab.app_sg, IpProtocol="icmp", FromPort=8, ToPort=-1, IpRanges=[{"CidrIp": "10.9.0.0/16"}])
    _add(lab, lab.app_sg, IpProtocol="tcp", FromPort=22, ToPort=22, IpRanges=[{"CidrIp": "0.0.0.0/0"}])
    _add(lab, lab.app_sg, IpProtocol="-1", UserIdGroupPairs=[{"GroupId": lab.app_sg}])

    frame = security_groups(lab.config, lab.backend)
    app_in = frame[(frame.group == lab.name("sg-app")) & (frame.direction == "ingress")]
    readable = set(zip(app_in.protocol, app_in.ports, app_in.peer, strict=True))

    assert readable == {
        ("tcp", "1024-65535", "10.9.0.0/16"),
        ("icmp", "type 8", "10.9.0.0/16"),
        ("tcp", "22", "0.0.0.0/0"),
        ("all", "all", lab.name("sg-app")),
    }
    ssh = app_in[app_in.ports == "22"].iloc[0]
    assert ssh.risk == "high: SSH (22) open to the internet"
    wide = app_in[app_in.ports == "1024-65535"].iloc[0]
    assert wide.risk.startswith("medium: MySQL (3306) allowed by CIDR")


def test_any_group_ids_without_a_lab_config(lab: Lab) -> None:
    frame = security_groups(backend=lab.backend, group_ids=[lab.db_sg])

    assert set(frame.group_id) == {lab.db_sg}
    assert lab.name("sg-app") in set(frame.peer)  # the referenced group is named, not an id


def test_unknown_group_id_is_a_labkit_error(lab: Lab) -> None:
    with pytest.raises(LabkitError, match="sg-00000000000000000"):
        security_groups(backend=lab.backend, group_ids=["sg-00000000000000000"])


def test_styled_table_highlights_risky_rows_and_renders_the_same_twice(lab: Lab) -> None:
    _add(lab, lab.db_sg, IpProtocol="tcp", FromPort=3306, ToPort=3306, IpRanges=[{"CidrIp": "0.0.0.0/0"}])
    frame = security_groups(lab.config, lab.backend)

    first, second = style_rules(frame).to_html(), style_rules(frame).to_html()

    assert first == second
    assert 'id="T_labkit-rules"' in first
    assert "background-color: #f8d7da" in first  # the world-open 3306 row
    assert "MySQL (3306) open to the internet" in first
