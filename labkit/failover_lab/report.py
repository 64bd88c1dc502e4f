"""What the failover lab measured, from its samples alone (so a reader, or a test, can recount every number).

Per strategy, failure and run:
- write downtime: the longest stretch without an acknowledged write, from the last one before the failure to
  the end of the run (to the run's end when the strategy never wrote on the writer again: not recovered);
- recovered: its last write was acknowledged by the writer after the failure;
- the errors it saw after the failure, by kind (refused as read-only: a demoted writer's refusals; lost
  connection; timeout; a name that resolved to nothing; no instance taking writes);
- acknowledged writes lost: acknowledged, and not on the writer after the run;
- first read on a reader of a write the new writer acknowledged, in seconds after the failure.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from labkit.failover_lab.app import ERROR_KINDS

KIND_COLUMNS = {kind: f"errors: {kind}" for kind in ERROR_KINDS}


@dataclass
class FailoverLab:
    """Every attempt of every strategy (`samples`), what the readers showed (`reads`), and each run's failure."""

    samples: pd.DataFrame  # failure, run, strategy, probe, sent_s, acked_s, done_s, acknowledged, served_by, error_kind
    reads: pd.DataFrame  # failure, run, probe, seen_s (first seen on a reader), reader
    runs: pd.DataFrame  # failure, run, order, call_s, how, writer_before, writer_after, acknowledged, lost

    def measures(self) -> pd.DataFrame:
        """One row per failure, run and strategy."""
        rows = []
        for run in self.runs.to_dict("records"):
            mine = self.samples[(self.samples["failure"] == run["failure"]) & (self.samples["run"] == run["run"])]
            reads = self.reads[(self.reads["failure"] == run["failure"]) & (self.reads["run"] == run["run"])]
            end_s = float(mine["done_s"].max())
            for strategy, samples in mine.groupby("strategy", sort=True):
                rows.append({"failure": run["failure"], "run": run["run"], "strategy": strategy,
                             **measure(samples, run, reads, end_s)})  # fmt: skip
        return pd.DataFrame(rows)

    def table(self) -> pd.DataFrame:
        """The median over runs of each measure, per failure and strategy (the share of runs recovered)."""
        measures = self.measures()
        numeric = [c for c in measures.columns if c not in ("failure", "run", "strategy")]
        table = measures.groupby(["failure", "strategy"], sort=False)[numeric].median()
        table["recovered"] = measures.groupby(["failure", "strategy"], sort=False)["recovered"].mean()
        table.insert(0, "runs", measures.groupby(["failure", "strategy"], sort=False).size())
        return table.round(2)

    def lost(self) -> int:
        """Acknowledged writes missing from the writer, over every run and strategy."""
        return int(sum(len(lost) for lost in self.runs["lost"]))

    def conclusion(self) -> str:
        """The comparison in words, read from the table (medians), not written in advance."""
        table = self.measures().groupby(["failure", "strategy"], sort=False).median(numeric_only=True)
        lines = []
        for failure in dict.fromkeys(self.runs["failure"]):
            rows = table.loc[failure]
            recovered = rows[rows["recovered"] >= 0.5]
            never = sorted(set(rows.index) - set(recovered.index))
            if len(recovered):
                best = recovered["write downtime (s)"].idxmin()
                text = (f"{failure}: {best} wrote again first ({recovered.loc[best, 'write downtime (s)']:.1f} s "
                        f"without an acknowledged write)")  # fmt: skip
                worst = recovered["write downtime (s)"].idxmax()
                if worst != best:
                    text += f", {worst} last ({recovered.loc[worst, 'write downtime (s)']:.1f} s)"
            else:
                text = f"{failure}: no strategy wrote on the writer again within the run"
            if never:
                text += f"; {', '.join(never)} never did within the run"
            refused = rows[KIND_COLUMNS["read-only"]]
            if refused.max() > 0:
                text += f"; most writes refused as read-only: {refused.idxmax()} ({refused.max():.0f})"
            lines.append(text + ".")
        lost = self.lost()
        lines.append(f"Acknowledged writes lost: {lost}" + (" (see runs['lost'])." if lost else ", in every run."))
        return "\n".join(lines)

    def plot(self, failure: str, run: int = 1) -> Any:
        """One timeline per strategy, side by side: each attempt at its send time, on the row of its outcome
        (acknowledged by the writer before or after, or the error's kind); the failure call at 0."""
        import matplotlib.pyplot as plt  # heavy dependency: loaded only when a plot is asked for

        info = self.runs[(self.runs["failure"] == failure) & (self.runs["run"] == run)].iloc[0]
        mine = self.samples[(self.samples["failure"] == failure) & (self.samples["run"] == run)]
        strategies = sorted(mine["strategy"].unique())
        rows = [
            f"ok on {info['writer_before']}",
            *([f"ok on {info['writer_after']}"] if info["writer_after"] != info["writer_before"] else []),
            *ERROR_KINDS,
        ]
        figure, axes = plt.subplots(1, len(strategies), figsize=(3.2 * len(strategies), 3.2), sharey=True,
                                    layout="constrained", squeeze=False)  # fmt: skip
        for axis, strategy in zip(axes[0], strategies, strict=True):
            samples = mine[mine["strategy"] == strategy]
            outcome = samples.apply(
                lambda s: f"ok on {s['served_by']}" if s["acknowledged"] else s["error_kind"], axis=1
            )
            for row, label in enumerate(rows):
                chosen = samples[outcome == label]
                colour = "tab:red" if label in ERROR_KINDS else ("tab:blue" if row == 0 else "tab:orange")
                axis.plot(chosen["sent_s"] - info["call_s"], [row] * len(chosen), "|", color=colour, ms=9)
            axis.axvline(0, color="grey", linestyle="--")
            downtime = measure(samples, info, self.reads.iloc[0:0], float(mine["done_s"].max()))["write downtime (s)"]
            axis.set_title(f"{strategy}: {downtime:.1f} s", fontsize="medium")
            axis.set_xlabel("s after the failure")
        axes[0][0].set_yticks(range(len(rows)), rows)
        figure.suptitle(f"{failure}: every write attempt, by outcome (dashed: the failure)", fontsize="medium")
        plt.close(figure)
        return figure

    def to_json(self) -> dict[str, Any]:
        table = self.table().reset_index()
        return {
            "table": table.to_dict("records"),
            "runs": self.runs.drop(columns=["lost"])
            .assign(lost=[len(v) for v in self.runs["lost"]])
            .to_dict("records"),
            "lost": self.lost(),
            "conclusion": self.conclusion(),
        }

    def __repr__(self) -> str:
        return f"{self.table().to_string()}\n\n{self.conclusion()}"

    def _repr_html_(self) -> str:
        conclusion = "".join(f"<li>{line}</li>" for line in self.conclusion().splitlines())
        return f"{self.table().to_html()}<ul>{conclusion}</ul>"


def measure(samples: pd.DataFrame, run: Any, reads: pd.DataFrame, end_s: float) -> dict[str, Any]:
    """One strategy's measures in one run (see the module's docstring)."""
    call_s, writer_after = float(run["call_s"]), run["writer_after"]
    samples = samples.sort_values("sent_s")
    acked = samples[samples["acknowledged"]]
    after = samples[samples["sent_s"] >= call_s]
    before = acked[acked["acked_s"] <= call_s]["acked_s"]
    times = [float(before.max()) if len(before) else call_s, *acked[acked["acked_s"] > call_s]["acked_s"]]
    recovered = bool(len(samples)) and bool(samples.iloc[-1]["acknowledged"]) and (
        samples.iloc[-1]["served_by"] == writer_after and samples.iloc[-1]["sent_s"] >= call_s)  # fmt: skip
    if not recovered:
        times.append(end_s)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    new = acked[(acked["acked_s"] > call_s) & (acked["served_by"] == writer_after)]["probe"]
    seen = reads[reads["probe"].isin(set(new))]["seen_s"]
    lost = set(run["lost"]) & set(acked["probe"]) if "lost" in run else set()
    return {
        "write downtime (s)": max(gaps) if gaps else math.nan,
        "recovered": recovered,
        "attempts after": len(after),
        **{column: int((after["error_kind"] == kind).sum()) for kind, column in KIND_COLUMNS.items()},
        "acknowledged": len(acked),
        "acknowledged lost": len(lost),
        "first read of new writes (s)": float(seen.min()) - call_s if len(seen) else math.nan,
    }
