"""A failover seen from the web app: its page and /health polled through the tunnel while `failover()` runs.

What a user of the shop sees while Aurora promotes a reader: which instance served each page read, which
instance each endpoint reached, and the errors in between. The polls run on their own thread, through the
app's tunnel, every `interval` seconds (each poll is a page and a /health: new connections, as the app makes
one per request); `failover()` runs on the caller's thread with its own probes. The timeline merges
consecutive polls that saw the same thing into one phase.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import pandas as pd

from labkit.access.webapp import WebApp
from labkit.aws.backend import Backend
from labkit.bench.failover import (
    AFTER_COLOUR,
    BEFORE_COLOUR,
    FAILED_COLOUR,
    OTHER_COLOUR,
    FailoverReport,
    Periodic,
    failover,
)
from labkit.errors import ConfigError, LabkitError

SEEN = ["page", "writer endpoint", "reader endpoint"]  # what each poll records, one column each


@dataclass
class AppFailoverWatch:
    """The app's polls (one row each) and the failover they watched, on one clock (seconds from the watch's
    start; the failover's own times are moved onto it)."""

    polls: pd.DataFrame  # t_s, page, writer endpoint, reader endpoint: each the instance that answered or "error: ..."
    failover: FailoverReport
    failover_at_s: float

    def timeline(self) -> pd.DataFrame:
        """Consecutive polls that saw the same page and endpoints, as one phase each: from, to, what was seen."""
        if self.polls.empty:
            return pd.DataFrame(columns=["from_s", "to_s", "polls", *SEEN])
        changed = (self.polls[SEEN] != self.polls[SEEN].shift()).any(axis=1).cumsum()
        phases = self.polls.groupby(changed, sort=True).agg(
            from_s=("t_s", "min"), to_s=("t_s", "max"), polls=("t_s", "size"), **{c: (c, "first") for c in SEEN}
        )
        return phases.round({"from_s": 2, "to_s": 2}).reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """What the shop's users saw: polls, failed page loads and /health checks, and the instances that served."""
        failed = self.polls[SEEN].apply(lambda column: column.str.startswith("error")).sum()
        return pd.DataFrame(
            [
                {"measure": "polls (page and /health)", "value": len(self.polls)},
                {"measure": "failover_db_cluster called at (s)", "value": round(self.failover_at_s, 2)},
                {"measure": "page loads that failed", "value": int(failed["page"])},
                {"measure": "writer-endpoint checks that failed", "value": int(failed["writer endpoint"])},
                {"measure": "pages read from", "value": ", ".join(_instances(self.polls["page"]))},
                {"measure": "writer endpoint reached", "value": ", ".join(_instances(self.polls["writer endpoint"]))},
                {
                    "measure": "writer before, after",
                    "value": f"{self.failover.writer_before}, {self.failover.writer_after}",
                },
                {"measure": "acknowledged writes lost", "value": len(self.failover.lost)},
            ]
        )

    def plot(self) -> Any:
        """One row per thing seen (page, writer endpoint, reader endpoint), each poll a dot coloured by the
        instance that answered; red for an error; the failover call as a dashed line."""
        import matplotlib.pyplot as plt  # heavy dependency: loaded only when a plot is asked for

        colours = {self.failover.writer_before: BEFORE_COLOUR, self.failover.writer_after: AFTER_COLOUR}
        figure, axes = plt.subplots(figsize=(8, 3.2), layout="constrained")
        drawn: set[str] = set()
        for row, column in enumerate(reversed(SEEN)):
            for answer, group in self.polls.groupby(column, sort=True):
                failed = str(answer).startswith("error")
                label = "error" if failed else str(answer)
                colour = FAILED_COLOUR if failed else colours.get(str(answer), OTHER_COLOUR)
                axes.plot(group["t_s"], [row] * len(group), "o", ms=5, color=colour,
                          label=None if label in drawn else label)  # fmt: skip
                drawn.add(label)
        axes.axvline(self.failover_at_s, color="grey", linestyle="--", label="failover_db_cluster called")
        axes.set_yticks(range(len(SEEN)), list(reversed(SEEN)))
        axes.set_ylim(-0.6, len(SEEN) - 0.4)
        axes.set_xlabel("seconds (each dot: one poll of the app through its tunnel)")
        axes.set_title("The shop during a failover: which instance answered")
        figure.legend(loc="outside lower center", ncols=3, fontsize="small", frameon=False)
        plt.close(figure)
        return figure

    def __repr__(self) -> str:
        return f"{self.headline()}\n{self.timeline().to_string(index=False)}"

    def headline(self) -> str:
        failed = int(self.polls["page"].str.startswith("error").sum())
        return (
            f"{len(self.polls)} polls of the shop during a failover from {self.failover.writer_before} to "
            f"{self.failover.writer_after}: {failed} page loads failed"
        )

    def _repr_html_(self) -> str:
        return f"<p><b>{html.escape(self.headline())}</b></p>{self.timeline().to_html(index=False)}"


def _instances(column: pd.Series) -> list[str]:
    return list(dict.fromkeys(answer for answer in column if not answer.startswith("error")))


class _Poller(Periodic):
    """Polls the app's page and /health every `interval` s until stopped."""

    def __init__(self, app: WebApp, interval: float) -> None:
        super().__init__("app-failover-poller", interval)
        self.app = app

    def tick(self) -> None:
        self.rows.append(self.poll())

    def poll(self) -> dict[str, Any]:
        row: dict[str, Any] = {"t_s": round(self.seconds(), 3)}
        try:
            page = self.app.page()
            row["page"] = page["served_by"] or f"error: {page['status']} {page['problem']}".strip()
        except LabkitError as exc:
            row["page"] = f"error: {exc.message}"
        try:
            report = self.app.health_report()
            for endpoint in ("writer", "reader"):
                seen = report[endpoint]
                row[f"{endpoint} endpoint"] = seen.get("served_by") if seen["ok"] else f"error: {seen.get('error')}"
        except (LabkitError, ValueError, KeyError) as exc:
            row["writer endpoint"] = row["reader endpoint"] = f"error: {exc}"
        return row


def watch_failover(
    app: WebApp,
    *,
    interval: float = 0.2,
    after: float = 2.0,
    config: Any | None = None,
    backend: Backend | None = None,
    **failover_options: Any,
) -> AppFailoverWatch:
    """Run `failover()` while polling the app's page and /health every `interval` s, and `after` s more."""
    if not 0.05 <= interval <= 5:
        raise ConfigError(f"interval={interval!r}", field="interval", fix="poll every 0.05 to 5 s (default 0.2)")
    if not 0 <= after <= 60:
        raise ConfigError(f"after={after!r}", field="after", fix="keep polling 0 to 60 s after the failover")
    poller = _Poller(app, interval)
    poller.start()
    try:
        report = failover(config=config, backend=backend, **failover_options)
        poller.stop.wait(after)
    finally:
        poller.stop.set()
        poller.join()
    polls = pd.DataFrame(poller.rows, columns=["t_s", *SEEN])
    failover_at = (report.started_ns - poller.start_ns) / 1e9 + report.failover_at_s
    return AppFailoverWatch(polls, report, failover_at)
