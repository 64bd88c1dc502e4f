"""LabConfig: every bad value is refused with a ConfigError naming the field, before any AWS call."""

from __future__ import annotations

import dataclasses
import stat

import pytest

from labkit.config import MAX_READERS, LabConfig, field_names
from labkit.engines.aurora_mysql import AURORA_MYSQL
from labkit.errors import ConfigError

FIELDS = [
    "lab",
    "learner",
    "region",
    "backend",
    "vpc",
    "vpc_cidr",
    "engine_version",
    "db_instance_class",
    "readers",
    "instance_type",
    "ssh_cidr",
    "key_pair",
    "deletion_protection",
]

BAD_VALUES = [
    ("lab", "AuroraLab", "lower-case"),
    ("lab", "my_lab", "RDS identifier"),
    ("lab", "", "RDS identifier"),
    ("learner", "alice--b", "single hyphens"),
    ("learner", "alice-", "not ending with a hyphen"),
    ("learner", "1alice", "starting with a letter"),
    ("learner", 7, "must be text"),
    ("region", "us-east-9", "not an AWS region"),
    ("region", "mars-north-1", "not an AWS region"),
    ("backend", "gcp", "unknown backend"),
    ("vpc", "vpc-123", "neither"),
    ("vpc", "mine", "neither"),
    ("vpc_cidr", "10.42.0.1/16", "did you mean 10.42.0.0/16"),
    ("vpc_cidr", "10.0.0.0/8", "/16 to /26"),
    ("vpc_cidr", "10.42.0.0/28", "/16 to /26"),
    ("vpc_cidr", "8.8.0.0/16", "private range"),
    ("vpc_cidr", "not-a-cidr", "not an IPv4 network"),
    ("engine_version", "5.7.mysql_aurora.2.11.2", "Aurora MySQL 3"),
    ("engine_version", "8.0.32", "Aurora MySQL 3"),
    ("db_instance_class", "db.t3.small", "does not offer"),
    ("db_instance_class", "db.m5.large", "does not offer"),
    ("readers", -1, "out of range"),
    ("readers", MAX_READERS + 1, "out of range"),
    ("readers", "two", "whole number"),
    ("readers", True, "whole number"),
    ("instance_type", "t3.mega", "not an EC2 instance type"),
    ("ssh_cidr", "0.0.0.0/0", "whole internet"),
    ("ssh_cidr", "203.0.113.0/24", "one only"),
    ("ssh_cidr", "10.0.0.5/32", "not a public address"),
    ("ssh_cidr", "10.42.1.5", "inside the lab's own VPC"),
    ("ssh_cidr", "127.0.0.1", "not a public address"),
    ("ssh_cidr", "203.0.113.300", "not an IPv4 address"),
    ("key_pair", "yes", "true or false"),
    ("deletion_protection", 1, "true or false"),
]


def test_the_defaults_are_valid_and_the_fields_are_the_documented_ones():
    config = LabConfig()
    assert list(field_names()) == FIELDS
    assert (config.lab, config.backend, config.vpc, config.readers) == ("auroralab", "sandbox", "create", 1)
    assert config.db_instance_class == "db.t4g.medium" and config.instance_type == "t3.micro"
    assert config.ssh_cidr is None and not config.key_pair and not config.deletion_protection


@pytest.mark.parametrize(("field", "value", "says"), BAD_VALUES, ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES])
def test_every_bad_value_raises_a_config_error_naming_the_field_and_the_fix(field, value, says):
    with pytest.raises(ConfigError) as caught:
        LabConfig(**{field: value})
    assert caught.value.field == field
    assert says in str(caught.value)
    assert caught.value.fix, "every refusal says how to fix it"


def test_every_field_has_at_least_one_refusal_rule():
    assert {field for field, _, _ in BAD_VALUES} == set(FIELDS)


def test_names_too_long_after_prefixing_are_refused_naming_the_longer_part():
    with pytest.raises(ConfigError) as caught:
        LabConfig(learner="a" + "b" * 49)
    assert caught.value.field == "learner"
    assert "63" in caught.value.message
    with pytest.raises(ConfigError) as caught:
        LabConfig(lab="l" * 54, learner="x")
    assert caught.value.field == "lab"


def test_instance_identifiers_stay_shorter_than_the_cluster_identifier_with_every_reader():
    learner = "a" * 45  # auroralab-<45>-cluster is 63 characters, RDS's limit; -db-16 (15 readers) is 61
    assert LabConfig(learner=learner, readers=15)
    with pytest.raises(ConfigError, match="cluster"):
        LabConfig(learner=learner + "a", readers=15)


def test_assigning_a_field_validates_it_and_keeps_the_old_value_on_error():
    config = LabConfig()
    config.readers = 3
    with pytest.raises(ConfigError):
        config.readers = 99
    assert config.readers == 3
    config.ssh_cidr = "203.0.113.7"
    assert config.ssh_cidr == "203.0.113.7/32"


def test_replace_validates_too():
    with pytest.raises(ConfigError):
        dataclasses.replace(LabConfig(), vpc_cidr="10.0.0.0/8")


def test_text_values_from_flags_are_coerced():
    config = LabConfig.from_mapping(
        {"readers": "2", "key_pair": "true", "deletion_protection": "no", "ssh_cidr": "none"}
    )
    assert (config.readers, config.key_pair, config.deletion_protection, config.ssh_cidr) == (2, True, False, None)


def test_unknown_settings_are_refused_with_a_suggestion():
    with pytest.raises(ConfigError) as caught:
        LabConfig.from_mapping({"reader": 2})
    assert caught.value.field == "reader"
    assert "readers" in str(caught.value)


def test_subnets_are_quarters_of_the_vpc():
    assert LabConfig(vpc_cidr="10.1.0.0/16").subnet_cidrs() == ("10.1.0.0/18", "10.1.64.0/18", "10.1.128.0/18")


def test_existing_vpc_ids_and_default_are_accepted():
    assert LabConfig(vpc="default").vpc == "default"
    assert LabConfig(vpc="vpc-0abc12345def67890").vpc == "vpc-0abc12345def67890"
    assert LabConfig(vpc="vpc-1a2b3c4d").vpc == "vpc-1a2b3c4d"


def test_every_listed_instance_class_is_accepted():
    for name in AURORA_MYSQL.instance_classes:
        assert LabConfig(db_instance_class=name).db_instance_class == name


def test_toml_round_trip_through_the_labkit_home(lab_home):
    config = LabConfig(learner="alice", readers=2, ssh_cidr="198.51.100.4/32", key_pair=True, region="eu-west-1")
    path = config.save()
    assert path == lab_home / "lab.toml"
    assert LabConfig.load() == config
    unset = LabConfig(learner="bob")
    unset.save()
    assert LabConfig.load().ssh_cidr is None
    assert stat.S_ISREG(path.stat().st_mode)


def test_loading_with_no_file_gives_the_defaults_and_a_missing_explicit_file_is_an_error(lab_home, tmp_path):
    assert LabConfig.load() == LabConfig()
    with pytest.raises(ConfigError) as caught:
        LabConfig.load(tmp_path / "missing.toml")
    assert caught.value.field == "config"


def test_bad_toml_and_bad_values_in_a_file_are_config_errors(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("readers = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        LabConfig.load(broken)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('db_instance_class = "db.t3.small"\n')
    with pytest.raises(ConfigError) as caught:
        LabConfig.load(wrong)
    assert caught.value.field == "db_instance_class"


@pytest.mark.parametrize(("given", "kept"), [("default", "default"), ("LTS", "lts"), ("8.0.mysql_aurora.3.10.1", None)])
def test_engine_version_is_a_word_resolved_at_plan_time_or_a_version(given, kept):
    assert LabConfig(engine_version=given).engine_version == (kept or given)
    assert LabConfig().engine_version == "default"  # a new lab gets the region's current default, never a pin
