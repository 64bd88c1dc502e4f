"""The engine version is resolved at plan time and the class checked orderable (issue 15, item 3).

The strict layer answers describe_db_engine_versions and describe_orderable_db_instance_options from a catalog
a test can change: a retired version, an unorderable class. Before, the version was checked by the same regex
in the product and in the strict layer, so a retired default passed every test and failed in a learner's account.
"""

from __future__ import annotations

import dataclasses
import io
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from support.clusters import cluster_params
from support.strict import CATALOG_DEFAULT, ENGINE

from labkit.aws.tags import NODE_CLUSTER
from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.lab.apply import apply
from labkit.lab.engine import NO_EXTENDED_SUPPORT, check_version_text, resolve_version
from labkit.lab.plan import plan
from labkit.sandbox.daemon.catalog import engine_versions, orderable_options

RETIRED = "8.0.mysql_aurora.3.07.1"  # deprecated in the catalog, as 3.05 to 3.07 are on AWS
AURORA_84_FIRST = "8.4.mysql_aurora.8.4.7"  # as RDS's API lists 8.4.7
AURORA_84_NEWEST = "8.4.mysql_aurora.8.4.10"


def create_cluster_params(backend) -> list[dict]:
    """The parameters of every CreateDBCluster call from now on."""
    seen: list[dict] = []
    backend.session().events.register(
        "before-parameter-build.rds.CreateDBCluster", lambda params, **_: seen.append(dict(params))
    )
    return seen


def test_the_default_config_gets_the_regions_default_version_and_never_extended_support(strict_backend):
    seen = create_cluster_params(strict_backend)
    result = plan(LabConfig(), strict_backend)
    assert any(note.startswith(f"Aurora MySQL {CATALOG_DEFAULT} (the region's default)") for note in result.notes)
    ids = apply(LabConfig(), strict_backend, stream=io.StringIO()).ids
    [params] = seen
    assert params["EngineVersion"] == CATALOG_DEFAULT
    assert params["EngineLifecycleSupport"] == NO_EXTENDED_SUPPORT
    cluster = strict_backend.client("rds").describe_db_clusters(DBClusterIdentifier=ids[NODE_CLUSTER])["DBClusters"][0]
    assert cluster["EngineVersion"] == CATALOG_DEFAULT


def test_a_retired_default_moves_on_to_the_next_default(strict_backend):
    strict_backend.strict.catalog.retire(CATALOG_DEFAULT)
    result = plan(LabConfig(), strict_backend)
    assert any(f"Aurora MySQL {AURORA_84_NEWEST} (the region's default)" in note for note in result.notes)


def test_a_region_whose_default_is_aurora_mysql_8_4_gets_it(strict_backend):
    """Issue 25 item 3: Aurora MySQL 8.4 (Aurora User Guide, "Aurora MySQL version 8.4 compatible with MySQL 8.4").
    The version rule accepted only 8.0.mysql_aurora.3.x.y, so a region whose default became 8.4 got the newest
    Aurora MySQL 3 instead, and with no 3.x left, a ConfigError for a version RDS offers."""
    catalog = strict_backend.strict.catalog
    catalog.default = AURORA_84_FIRST
    seen = create_cluster_params(strict_backend)
    result = plan(LabConfig(), strict_backend)
    assert any(f"Aurora MySQL {AURORA_84_FIRST} (the region's default)" in note for note in result.notes), result.notes
    for version in [v for v in catalog.versions if v.startswith("8.0.")]:
        catalog.retire(version)
    catalog.default = AURORA_84_FIRST
    apply(LabConfig(), strict_backend, stream=io.StringIO())
    assert [params["EngineVersion"] for params in seen] == [AURORA_84_FIRST]


@pytest.mark.parametrize("pinned", ["8.4.7", "8.4.mysql_aurora.8.4.7"])
def test_an_aurora_mysql_8_4_version_is_accepted_in_either_spelling_and_created_as_the_region_lists_it(
    strict_backend, pinned
):
    """The guide writes 8.4.7; the API lists 8.4.mysql_aurora.8.4.7: either, pinned, gives the cluster the listed one."""
    assert LabConfig(engine_version=pinned).engine_version == pinned
    seen = create_cluster_params(strict_backend)
    result = plan(LabConfig(engine_version=pinned), strict_backend)
    assert any(f"Aurora MySQL {AURORA_84_FIRST} (pinned in the config" in note for note in result.notes), result.notes
    apply(LabConfig(engine_version=pinned), strict_backend, stream=io.StringIO())
    assert [params["EngineVersion"] for params in seen] == [AURORA_84_FIRST]


def test_the_sandbox_catalog_lists_aurora_mysql_8_4_in_its_own_parameter_group_family():
    rows = {row["EngineVersion"]: row for row in engine_versions({"IncludeAll": "true"}, ENGINE)}
    assert (rows[AURORA_84_FIRST]["DBParameterGroupFamily"], rows[AURORA_84_FIRST]["MajorEngineVersion"]) == (
        "aurora-mysql8.4",
        "8.4",
    )
    assert rows[CATALOG_DEFAULT]["DBParameterGroupFamily"] == "aurora-mysql8.0"


def test_the_sandbox_offers_a_class_only_for_the_versions_that_run_it():
    """Per-version orderability: a class a version cannot run is not offered for it (and the plan refuses it)."""
    limited = dataclasses.replace(ENGINE.catalog, not_orderable={"8.4.": ("db.t3.",)})
    engine = dataclasses.replace(ENGINE, catalog=limited)
    offered = orderable_options({"DBInstanceClass": "db.t3.medium"}, "us-east-1", engine)
    versions = {option["version"] for option in offered}
    assert AURORA_84_FIRST not in versions and CATALOG_DEFAULT in versions
    assert orderable_options(
        {"DBInstanceClass": "db.t4g.medium", "EngineVersion": AURORA_84_FIRST}, "us-east-1", engine
    )


def test_a_pinned_version_that_retired_fails_the_plan_naming_the_field(strict_backend):
    pinned = "8.0.mysql_aurora.3.08.2"
    assert any(pinned in note for note in plan(LabConfig(engine_version=pinned), strict_backend).notes)
    strict_backend.strict.catalog.retire(pinned)
    with pytest.raises(ConfigError) as caught:
        plan(LabConfig(engine_version=pinned), strict_backend)
    assert caught.value.field == "engine_version"
    assert "deprecated in us-east-1" in caught.value.message and "'default'" in caught.value.fix
    assert CATALOG_DEFAULT in caught.value.fix


def test_a_version_the_region_never_offered_fails_the_plan(strict_backend):
    with pytest.raises(ConfigError) as caught:
        plan(LabConfig(engine_version="8.0.mysql_aurora.3.99.0"), strict_backend)
    assert caught.value.field == "engine_version" and "not offered" in caught.value.message


def test_apply_stops_before_creating_anything_on_a_retired_version(strict_backend):
    seen = create_cluster_params(strict_backend)
    with pytest.raises(ConfigError):
        apply(LabConfig(engine_version=RETIRED), strict_backend, stream=io.StringIO())
    assert seen == []
    assert not strict_backend.client("ec2").describe_vpcs(Filters=[{"Name": "tag-key", "Values": ["labkit:lab"]}])[
        "Vpcs"
    ], "the plan fails before apply creates the network"


def test_an_unorderable_class_fails_the_plan_naming_the_field(strict_backend):
    strict_backend.strict.catalog.unorderable.add("db.t4g.medium")
    with pytest.raises(ConfigError) as caught:
        plan(LabConfig(), strict_backend)
    assert caught.value.field == "db_instance_class"
    assert "db.t4g.medium cannot run" in caught.value.message


def test_the_strict_layer_refuses_a_retired_version_as_rds_does(strict_backend):
    """The old check was the product's own regex, so it could never catch a version the product pinned."""
    with pytest.raises(ClientError) as caught:
        strict_backend.client("rds").create_db_cluster(**cluster_params("retired", EngineVersion=RETIRED))
    assert "Cannot find version" in str(caught.value)


def test_lts_resolves_to_the_newest_long_term_support_release(strict_backend):
    rds = strict_backend.client("rds")
    config = SimpleNamespace(engine_version="lts", region="us-east-1")
    assert resolve_version(rds, config) == ("8.0.mysql_aurora.3.10.6", "the newest long-term-support version")
    for version in [v for v in strict_backend.strict.catalog.versions if v.startswith("8.0.mysql_aurora.3.10.")]:
        strict_backend.strict.catalog.retire(version)
    assert resolve_version(rds, config)[0] == "8.0.mysql_aurora.3.04.6"


@pytest.mark.parametrize("version", ["8.0.mysql_aurora.3.\u0660\u0668.0", "8.0.mysql_aurora.3.08.\u0661", "3.08"])
def test_a_version_in_non_ascii_digits_is_refused_before_any_call(version):
    with pytest.raises(ConfigError) as caught:
        check_version_text(version)
    assert caught.value.field == "engine_version" and "ASCII digits" in caught.value.fix


def test_a_backend_without_a_catalog_says_nothing_was_checked(moto_backend):
    """Plain moto has no engine catalog: the plan says so instead of pretending the version was verified."""
    result = plan(LabConfig(), moto_backend)
    assert any("not checked: this backend has no engine catalog" in note for note in result.notes)
