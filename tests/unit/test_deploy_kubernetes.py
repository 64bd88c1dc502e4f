"""Zero to JupyterHub, checked offline (#24): nothing here runs Kubernetes, Helm or Docker.

The values file is validated against the chart's own rules for the keys it uses (values.schema.json, derived
from Z2JH's values.schema.yaml by derive_schema.py, source and commit named inside), so an unknown or misspelt
key or a wrong type fails here as `helm install` would fail. The per-learner requests and limits are checked
against the measured footprint recorded in the README. The image's install steps are a script the Dockerfile
runs; tests/integration/test_hub_image.py runs its `system` and `check` steps on this machine.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((DEPLOY / "values.schema.json").read_text())


@pytest.fixture
def values() -> dict:
    return yaml.safe_load((DEPLOY / "values.yaml").read_text())


def test_the_values_file_passes_the_charts_schema(schema, values):
    assert "zero-to-jupyterhub-k8s" in schema["$comment"] and re.search(r"[0-9a-f]{40}", schema["$comment"])
    jsonschema.validate(values, schema)


@pytest.mark.parametrize(
    "path, bad",
    [
        (("singleuser", "memroy"), {"limit": "2G"}),  # a misspelt key
        (("singleuser", "cpu", "limit"), "two"),  # a wrong type
        (("cull", "timeout"), "1h"),
        (("singleuser", "storage", "sizeLimit"), "5Gi"),  # a key the chart does not have
    ],
)
def test_the_schema_refuses_what_helm_would_refuse(schema, values, path, bad):
    broken = copy.deepcopy(values)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def _bytes(quantity: str | int) -> float:
    units = {"K": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    number, unit = re.fullmatch(r"([\d.]+)([KMG]i?)?", str(quantity)).groups()
    return float(number) * units.get(unit or "", 1)


def test_each_learner_gets_the_culler_storage_and_a_footprint_that_fits(values):
    single = values["singleuser"]
    assert values["cull"]["enabled"] and values["cull"]["timeout"] > 0
    assert single["storage"]["type"] == "dynamic" and single["storage"]["homeMountPath"] == "/home/jovyan"
    assert single["extraEnv"]["LABKIT_HOME"].startswith(single["storage"]["homeMountPath"])  # the lab persists
    assert single["cmd"] == ["python", "-m", "labkit.hub.singleuser"]  # the notebooks are released into the home
    assert single["uid"] != 0  # MariaDB, PostgreSQL and the sandbox run as the notebook user
    # the measured peak of one learner (README: about 1.2 GB while the lab is built) fits under the limit,
    # and the guarantee covers an idle learner (about 0.5 GB)
    assert _bytes(single["memory"]["limit"]) >= 1.5e9 and _bytes(single["memory"]["guarantee"]) >= 0.5e9
    assert single["cpu"]["limit"] >= 1


def test_the_dockerfile_runs_the_tested_install_steps():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=quay\.io/jupyter/\S+-notebook:\S+", dockerfile, re.M)
    assert "install-image.sh system labkit check" in dockerfile
    assert re.search(r"^USER \$\{NB_UID\}", dockerfile, re.M)  # the server and the sandbox are never root
    script = (DEPLOY / "install-image.sh").read_text()
    for package in ("mariadb-server", "mariadb-client", "postgresql", "sysbench"):
        assert package in script
