"""Write values.schema.json: the part of Zero to JupyterHub's own values schema that covers the keys values.yaml uses.

The chart's schema (`jupyterhub/values.schema.yaml` in jupyterhub/zero-to-jupyterhub-k8s; the chart packages it
as values.schema.json, which Helm checks on install) is not committed here. This keeps, for every key
values.yaml sets, the chart's own rule for it, and `additionalProperties: false` wherever the chart has it, so a
misspelt or unknown key fails the offline test (tests/unit/test_deploy_kubernetes.py) as `helm install` would
fail. `required` lists are dropped: Helm checks the values merged with the chart's defaults, and this file is
only the overrides. Regenerate after changing values.yaml's keys or moving to a new chart version:

    python deploy/kubernetes/derive_schema.py PATH/TO/zero-to-jupyterhub-k8s COMMIT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = "jupyterhub/values.schema.yaml"


def subset(schema: dict[str, Any], values: Any) -> dict[str, Any]:
    """`schema` cut down to what `values` uses (descriptions and `required` dropped)."""
    kept = {k: v for k, v in schema.items() if k not in ("description", "required", "properties")}
    if isinstance(values, dict) and "properties" in schema:
        kept["properties"] = {}
        for key, value in values.items():
            if key in schema["properties"]:
                kept["properties"][key] = subset(schema["properties"][key], value)
            # a key the chart does not know is left out: additionalProperties: false then refuses it
    return kept


def main(repository: str, commit: str) -> int:
    full = yaml.safe_load((Path(repository) / SOURCE).read_text())
    values = yaml.safe_load((HERE / "values.yaml").read_text())
    derived = subset(full, values)
    derived["$comment"] = (
        f"Derived by deploy/kubernetes/derive_schema.py from jupyterhub/zero-to-jupyterhub-k8s {SOURCE} at commit "
        f"{commit} (BSD-3-Clause): only the keys deploy/kubernetes/values.yaml uses."
    )
    (HERE / "values.schema.json").write_text(json.dumps(derived, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
