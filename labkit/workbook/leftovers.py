"""After cleanup: the other labs that still have resources, tagged with this lab's name or this learner's.

`destroy` deletes the saved lab (lab.toml's lab and learner) and nothing else. A lab made with other settings
(`labkit up --learner x`, a second form saved with another name) keeps running, and on AWS keeps costing;
07 lists such labs so the learner sees them. A class shares one lab name, so classmates' labs show too: the
`relation` column says how each one matches.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import pandas as pd

from labkit.aws.backend import Backend
from labkit.config import LabConfig, lab_and_backend

COLUMNS = ["lab", "learner", "relation", "resources", "kinds", "delete with"]


@dataclass
class OtherLabs:
    """Labs other than `config`'s with resources in its region, one row each, and how to delete each."""

    frame: pd.DataFrame
    config: LabConfig
    region: str

    @property
    def empty(self) -> bool:
        return self.frame.empty

    def headline(self) -> str:
        who = f"lab {self.config.lab} or learner {self.config.learner}"
        if self.empty:
            return f"no other lab of {who} has resources in {self.region}"
        count = len(self.frame)
        return f"{count} other lab{'s' if count > 1 else ''} of {who} still {'have' if count > 1 else 'has'} resources in {self.region}"

    def __repr__(self) -> str:
        return self.headline() + ("" if self.empty else "\n" + self.frame.to_string(index=False))

    def _repr_html_(self) -> str:
        table = "" if self.empty else self.frame.to_html(index=False)
        return f"<p><b>{html.escape(self.headline())}</b></p>{table}"


def other_labs(config: Any | None = None, backend: Backend | None = None) -> OtherLabs:
    """Labs tagged with the same lab name or the same learner as `config`, other than it, that have resources
    in its region (read with each resource type's own describe call, as the class view does)."""
    from labkit.classroom.scan import scan  # the class-wide scan, for one region

    config, backend = lab_and_backend(config, backend)
    (region_scan,) = scan([backend])
    rows = []
    for lab, learner in sorted(region_scan.pairs()):
        if (lab, learner) == (config.lab, config.learner) or (lab != config.lab and learner != config.learner):
            continue
        items = region_scan.of(lab, learner)
        relation = "same learner, another lab" if learner == config.learner else "same lab, another learner name"
        rows.append(
            {
                "lab": lab,
                "learner": learner,
                "relation": relation,
                "resources": len(items),
                "kinds": ", ".join(sorted({item.kind for item in items})),
                "delete with": f"labkit down --lab {lab} --learner {learner} --region {backend.region}",
            }
        )
    return OtherLabs(pd.DataFrame(rows, columns=COLUMNS), config, backend.region)
