"""Issue 23 (items 3 and 6): the notebook cells of branch learner-trips, applied to the notebook JSON.

Each edit finds its anchor cell by id and source, so it fails loudly rather than landing in the wrong place.
Idempotent: a cell id that exists already is not added twice.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".")


def load(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / name, as_version=4)


def save(name: str, notebook: nbformat.NotebookNode) -> None:
    nbformat.validate(notebook)
    nbformat.write(notebook, ROOT / "notebooks" / name)


def index_of(notebook: nbformat.NotebookNode, cell_id: str, starts: str) -> int:
    for index, cell in enumerate(notebook.cells):
        if cell.get("id") == cell_id:
            assert cell.source.startswith(starts), (cell_id, cell.source[:80])
            return index
    raise AssertionError(f"no cell {cell_id}")


def md(cell_id: str, text: str) -> nbformat.NotebookNode:
    cell = new_markdown_cell(text)
    cell["id"] = cell_id
    return cell


def code(cell_id: str, text: str, *tags: str) -> nbformat.NotebookNode:
    cell = new_code_cell(text)
    cell["id"] = cell_id
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def insert_after(notebook: nbformat.NotebookNode, index: int, cells: list) -> None:
    existing = {c.get("id") for c in notebook.cells}
    fresh = [c for c in cells if c["id"] not in existing]
    notebook.cells[index + 1 : index + 1] = fresh


# ----- 00_setup: the form's warning and the preflight's plugin row (prose only) -----
nb = load("00_setup.ipynb")
form = nb.cells[index_of(nb, "cell-09", "## Choose your lab")]
if "readers = 0" not in form.source:
    form.source = form.source.replace(
        "notebooks and the `labkit` command use.",
        "notebooks and the `labkit` command use, and each later notebook's first cell names the lab and learner it\n"
        "found there. `readers = 0` saves a DB instance, but the form warns: 04's reader cells and 05's\n"
        "writer-against-reader comparison, replica lag and failover need a reader.",
    )
    assert "readers = 0" in form.source
preflight = nb.cells[index_of(nb, "preflight-md", "## Preflight")]
preflight.source = preflight.source.replace(
    "(IAM simulation, account quotas) is a warn", "(IAM simulation, account quotas, AWS's own session plugin) is a warn"
)
assert "AWS's own session plugin" in preflight.source
save("00_setup.ipynb", nb)

# ----- 03_compute: the break step holds a connection open, and shows it survive while new ones fail -----
nb = load("03_compute.ipynb")
insert_after(nb, index_of(nb, "cell-11", "## Break it, then fix it"), [
    md("held-md", "First open one database connection through a tunnel of its own, and hold it open (as 04's\n"
                  "connection pool will):"),
    code("held", 'held = labkit.hold_connection("writer", config)'),
])  # fmt: skip
insert_after(nb, index_of(nb, "cell-14", "app.health()"), [
    md("held-check-md", "The app fails because it opens a **new** connection for every request. The connection you\n"
                        "opened before the change still answers: security groups are **stateful**. AWS tracks each\n"
                        "connection a rule allowed, and removing the rule does not cut it; only new connections meet\n"
                        "the change. So an application with a connection pool (04's `labkit.engine`, most web\n"
                        "frameworks) keeps working after a revoke, until its connections are replaced, and a rule\n"
                        "change looks harmless until then. Ask both:"),
    code("held-check", "held.check()"),
    code("held-close", "held.close()"),
])  # fmt: skip
save("03_compute.ipynb", nb)

# ----- 04_sql: the app's side of the connection, one setting changed, a failover seen from the app -----
nb = load("04_sql.ipynb")
insert_after(nb, index_of(nb, "cell-28", "labkit.endpoints(config)"), [
    md("app-code-md", "## The app's side of the connection\n\n"
                      "The shop on the instance is an application like yours. These are the lines of it that find\n"
                      "the endpoints and read the master password with the **instance role** (`discover`: no\n"
                      "password in its configuration, only the cluster's name), and that send **reads** and\n"
                      "**writes** to different endpoints (`Database.read`, `Database.write`), shown from the very\n"
                      "file the instance's user data installed:"),
    code("app-code", 'labkit.app_code("discover", "Database.read", "Database.write")'),
    md("app-setting-md", "Which endpoint the page reads through is the app's one setting, `LABKIT_APP_READS_FROM`,\n"
                         "in its environment file (`/etc/labkit-app.env`, written by the user data). Change it the way an\n"
                         "operator does: on AWS, SSM Run Command rewrites the line and restarts the service; in the\n"
                         "sandbox the same script runs on the app's copy of the file. Send the page's reads to the\n"
                         "writer; `/health` shows where the page reads now:"),
    code("app-setting", 'app.configure(reads_from="writer")'),
    md("app-served-md", "The page says which instance served its read, now the writer:"),
    code("app-served", "app.page()"),
    md("app-reset-md", "Reads on the writer see every write at once (no replica lag), but they spend the writer's\n"
                       "capacity, which is what readers are for. Put the setting back:"),
    code("app-reset", 'app.configure(reads_from="reader")'),
    md("app-failover-md", "## A failover, seen from the app\n\n"
                          "Notebook 05 measures a failover in detail. Here, watch it as the shop's users would:\n"
                          "`watch_failover` polls the page and `/health` through the tunnel every 0.2 s while\n"
                          "`failover()` promotes the reader. Each row of the timeline is a phase in which every poll\n"
                          "saw the same thing: which instance served the page, and which one each endpoint reached\n"
                          "(the times vary from run to run):"),
    code("app-failover", "watch = labkit.watch_failover(app, config=config)\nwatch", "nbval-ignore-output"),
    code("app-failover-plot", "watch.plot()"),
    md("app-failover-after-md", "The endpoints moved and the app changed nothing: it opens a new connection per request,\n"
                                "and its endpoints are names that follow the roles. An application that held pooled\n"
                                "connections would keep talking to the old writer, now read-only, until it reconnects."),
])  # fmt: skip
save("04_sql.ipynb", nb)

# ----- 05_benchmark: one table per measure; the tunnel's cost measured interleaved -----
nb = load("05_benchmark.ipynb")
for cell_id, starts in (("cell-07", 'through.summary()[["target"'), ("cell-19", 'lag.summary()[["reader"')):
    if any(c.get("id") == cell_id for c in nb.cells):
        del nb.cells[index_of(nb, cell_id, starts)]
if any(c.get("id") == "cell-14" for c in nb.cells):
    del nb.cells[index_of(nb, "cell-14", "inside = labkit.benchmark(")]
tunnel = nb.cells[index_of(nb, "cell-15", "labkit.bench.tunnel_cost(")]
tunnel.source = "labkit.bench.tunnel_cost(config=config).round(2)"
prose = nb.cells[index_of(nb, "cell-13", "## What does the tunnel cost?")]
if "rounds" not in prose.source:
    prose.source = prose.source.rstrip() + (
        "\n\nThe two paths are measured **interleaved**, as `compare` does: in each round both run, request by request\n"
        "(on AWS, a batch of each in a random order), and each round gives one difference. Two runs one after\n"
        "the other once showed the tunnel *faster* than direct: drift between the runs, not the tunnel."
        " `added_us` is the median of the rounds' differences, with its 95% interval; `tunnel_over_direct`\n"
        "the median of their ratios."
    )
save("05_benchmark.ipynb", nb)

# ----- 06_cleanup: the other labs of this lab name or learner that still have resources -----
nb = load("06_cleanup.ipynb")
insert_after(nb, index_of(nb, "cell-04", 'print("nothing is left"'), [
    md("other-labs-md", "`destroy` deleted the lab your notebooks use (the one in `lab.toml`) and nothing else. A lab made\n"
                        "with other settings, say `labkit up --learner x` in a terminal, is another lab and still\n"
                        "runs (on AWS, still costs). These labs share your lab name or your learner name and still have\n"
                        "resources in this region, each with the command that deletes it:"),
    code("other-labs", "labkit.other_labs(config)"),
])  # fmt: skip
save("06_cleanup.ipynb", nb)
print("edited 00, 03, 04, 05, 06")
