"""The learner's JupyterLab, in a real browser: `make lab`'s launcher (labkit.workbook.lab) starts a fresh sandbox
and JupyterLab on loopback, and Debian's Chromium, driven by Playwright, opens every learner notebook in order,
looks at it as committed, runs all its cells and waits for the kernel to go idle; the test then asserts what a
learner sees: no unexpected error, widgets rendered (no `VBox(children=`, no "Loading widget"), dollar amounts
not typeset as math, a LabkitError as its message and fix without a traceback, values not cut with "...". A
screenshot of each notebook, each notebook's Run All time (notebook-run-all-seconds.json) and where each test's
time went (opening, Run All, screenshot, closing: notebook-phase-seconds.json) go to
test-artifacts/ (or $LABKIT_ARTIFACTS).

The lab here is Aurora PostgreSQL (issue #22, item 6): nbval runs the whole workbook on Aurora MySQL and compares
its outputs with the committed ones, so this run, on the other engine, is the workbook's one run on PostgreSQL:
every cell works on it, and the engine's own words (from its description, through labkit.explain) are shown.

Run All writes outputs into the notebook files, so the browser works on a copy in a temporary folder; the
committed notebooks are only read.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import pytest
from test_app_browser import ARTIFACTS, CHROMIUM_FLAGS, chromium_path

from labkit.config import LabConfig
from labkit.engines import ENGINES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[0-9]_*.ipynb"))  # the learner's, in order (90 is the instructor's)
RUN_TIMEOUT_MS = 600_000  # one notebook's Run All; 05 (benchmark, failover) is the longest
URL_LINE = re.compile(r"(http://127\.0\.0\.1:(\d+)/lab\?token=(\S+))")
TRUNCATED = re.compile(r"(\.\.\.|…)$")
SHORT_TRACEBACK = 5  # lines at most in a LabkitError's error output (labkit.workbook.shell.short_traceback)
RUN_TIMES: dict[str, float] = {}
PHASE_TIMES: dict[str, dict[str, float]] = {}  # where each notebook's test spends its time
ENGINE = "aurora-postgresql"  # nbval runs the workbook on the other engine
PORT = ENGINES[ENGINE].port
VIEWPORT = {"width": 1400, "height": 1000}
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on show


class Lab:
    """JupyterLab started the way `make lab` starts it, on a copy of the notebooks, in a home of its own."""

    def __init__(self, folder: Path, home: Path, settings: Path) -> None:
        self.folder, self.home = folder, home
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        env.pop("LABKIT_SANDBOX_PORT", None)
        env.update(
            LABKIT_HOME=str(home), LABKIT_BACKEND="sandbox", PYTHONHASHSEED="0", PYTHONUNBUFFERED="1",
            JUPYTER_CONFIG_DIR=str(home / "jupyter-config"), JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
            IPYTHONDIR=str(home / "ipython"),
        )  # fmt: skip
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "labkit.workbook.lab", f"--notebook-dir={folder}", "--no-browser"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url, self.port, self.token = self._wait_for_url()
        self._wait_until_serving()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            self.lines.put(line)

    def _wait_for_url(self, timeout: float = 90.0) -> tuple[str, int, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, "the launcher exited:\n" + "".join(self.log)
                continue
            if match := URL_LINE.search(line):
                return match.group(1), int(match.group(2)), match.group(3)
        raise AssertionError("the launcher printed no JupyterLab link:\n" + "".join(self.log))

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def _wait_until_serving(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "JupyterLab exited:\n" + "".join(self.log)
            try:
                self.api("/api/status")
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("JupyterLab did not answer:\n" + "".join(self.log))

    def wait_for_kernel(self, name: str, timeout: float = 60.0) -> None:
        """Until the notebook's kernel has started, is idle and the page is connected to it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for session in self.sessions():
                kernel = session["kernel"]
                if session["path"] == name and kernel["execution_state"] == "idle" and kernel["connections"] >= 1:
                    return
            time.sleep(0.2)
        raise AssertionError(f"the kernel of {name} did not start:\n" + "".join(self.log[-20:]))

    def sessions(self) -> list[dict[str, Any]]:
        return self.api("/api/sessions")  # type: ignore[return-value]

    def shut_down(self, sessions: list[dict[str, Any]]) -> None:
        """Each session's kernel shut down (the server answers once the kernel's process has exited)."""
        for session in sessions:
            self.api(f"/api/sessions/{session['id']}", method="DELETE")

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # JupyterLab shuts its kernels down on SIGTERM
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        subprocess.run([sys.executable, "-m", "labkit.cli.main", "sandbox", "down"], env=self.env,
                       capture_output=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebooks")
    for notebook in NOTEBOOKS:
        shutil.copy(notebook, folder / notebook.name)
    settings = tmp_path_factory.mktemp("lab-settings")
    # Every cell in the DOM (the default virtual scrolling leaves out what is off screen). No news setting here:
    # the launcher's own config must keep the news pop-up away (issue 23).
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    home = tmp_path_factory.mktemp("labkit-home")
    LabConfig(engine=ENGINE).save(home / "lab.toml")  # as `labkit run-notebooks --engine` writes it
    started = Lab(folder, home, settings)
    yield started
    started.stop()
    if RUN_TIMES:  # each notebook's Run All time, for the CI log's artifacts
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        times = {name: round(seconds, 1) for name, seconds in RUN_TIMES.items()}
        (ARTIFACTS / "notebook-run-all-seconds.json").write_text(json.dumps(times, indent=2) + "\n")
        phases = {name: {k: round(v, 1) for k, v in each.items()} for name, each in PHASE_TIMES.items()}
        (ARTIFACTS / "notebook-phase-seconds.json").write_text(json.dumps(phases, indent=2) + "\n")


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        context = launched.new_context(viewport=VIEWPORT)
        yield context
        launched.close()


class Workbench:
    """One JupyterLab page for the module: loading JupyterLab takes about 3.5 s of the browser's time, so it is
    loaded once, with the first notebook's link (a fresh workspace, as a learner's first visit: any pop-up there
    is seen), and every later notebook is opened in it as a learner opens one, through File > Open from Path.
    Each notebook's tab is closed and its kernel shut down, so the page holds one notebook at a time and each
    notebook has a fresh kernel of its own; the kernel shuts down (about 1 s: its process exits) while the next
    notebook opens, unless the next is the same notebook (JupyterLab would join the dying kernel's session). A
    test that fails leaves the page closed: the next one loads JupyterLab afresh rather than inherit a dialog or
    a half-run notebook."""

    def __init__(self, context: Any, lab: Lab) -> None:
        self.context, self.lab = context, lab
        self.page: Any = None
        self.loads = 0  # how many times JupyterLab was loaded (each in a workspace of its own)
        self.stopping = ThreadPoolExecutor(1)  # the closed notebooks' kernels, shut down in the background
        self.closing: tuple[set[str], Future[None]] | None = None  # the paths whose sessions are going

    @contextlib.contextmanager
    def opened(self, name: str) -> Iterator[Any]:
        """The notebook opened, its kernel started and idle; on the way out its tab closes and the kernel is shut
        down (after a failure the whole page closes)."""
        finished = False
        try:
            page = self._open(name)
            yield page
            finished = True
        finally:
            if finished:
                self._close_tab()
            else:
                self._discard_page()
            sessions = self.lab.sessions()
            self.closing = ({s["path"] for s in sessions}, self.stopping.submit(self.lab.shut_down, sessions))
            if not finished:
                self.done()

    def done(self) -> None:
        """Until the closed notebooks' kernels are shut down (raises what the shutdown raised)."""
        if self.closing is not None:
            closing, self.closing = self.closing, None
            closing[1].result(timeout=120)

    def _open(self, name: str) -> Any:
        if self.closing is not None and name in self.closing[0]:
            self.done()
        if self.page is None:
            self.loads += 1
            self.page = self.context.new_page()
            workspace = f"http://127.0.0.1:{self.lab.port}/lab/workspaces/tests-{self.loads}"
            self.page.goto(f"{workspace}/tree/{name}?token={self.lab.token}")
        else:
            _menu(self.page, "File", "Open from Path…")
            path = self.page.locator(".jp-Dialog input")
            path.fill(name)
            path.press("Enter")
        page = self.page
        page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=60_000)
        self.lab.wait_for_kernel(name)
        page.wait_for_function(
            f"() => document.querySelector({json.dumps(PANEL + ' .jp-Notebook-ExecutionIndicator')})"
            "?.getAttribute('data-status') === 'idle'",
            timeout=60_000,
        )
        self.done()  # at most one notebook's kernel going while the next is open
        return page

    def _close_tab(self) -> None:
        """File > Close Tab; a notebook changed and not saved (a learner's edits) is closed without saving."""
        page = self.page
        _menu(page, "File", "Close Tab")
        page.wait_for_function(
            "() => !document.querySelector('.jp-NotebookPanel') || document.querySelector('.jp-Dialog') !== null",
            timeout=30_000,
        )
        if page.locator(".jp-Dialog").count():
            page.locator(".jp-Dialog button", has_text=re.compile("^(Discard|Don't Save)$")).click()
            page.wait_for_selector(".jp-NotebookPanel", state="detached", timeout=30_000)

    def _discard_page(self) -> None:
        if self.page is not None:
            with contextlib.suppress(Exception):  # the page may already be gone with the failure
                self.page.close()
        self.page = None


@pytest.fixture(scope="module")
def workbench(browser, lab) -> Iterator[Workbench]:
    opened = Workbench(browser, lab)
    yield opened
    opened.done()
    opened.stopping.shutdown()


# Resolves once the browser has laid out and painted a frame after the call (the second animation frame: the first
# runs before that frame's layout).
NEXT_FRAME = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"


def _screenshot(page, path: Path) -> None:
    """The whole notebook in one picture: the window made as tall as the notebook (JupyterLab scrolls inside
    its panel, so a full-page screenshot alone shows one screen)."""
    height = page.evaluate(
        "() => { const n = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer');"
        " return n ? n.scrollHeight : 1000; }"
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 200, 16_000)})
    page.evaluate(
        "() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')?.scrollTo(0, 0)"
    )
    page.evaluate(NEXT_FRAME)  # a layout pass at the new size before the picture
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)


def _outputs_text(page) -> str:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea").all_inner_texts().__str__()


def _menu(page, top: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).first.click()


RUN_FINISHED = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
  if (prompts.some(p => p.includes('*'))) return false;
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  return /\\[\\d+\\]/.test(prompts[prompts.length - 1] || '') ||
         (panel.querySelector('[data-mime-type="application/vnd.jupyter.stderr"]') !== null &&
          (!indicator || indicator.getAttribute('data-status') === 'idle'));
}"""


def _run_all(page, name: str) -> float:
    _menu(page, "Edit", "Clear Outputs of All Cells")
    started = time.monotonic()
    _menu(page, "Run", "Run All Cells")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt')]"
        ".some(p => p.textContent.includes('*') || /\\[\\d+\\]/.test(p.textContent))",
        timeout=60_000,
    )
    page.wait_for_function(RUN_FINISHED, timeout=RUN_TIMEOUT_MS, polling=250)
    seconds = time.monotonic() - started
    _menu(page, "File", "Save Notebook")
    page.wait_for_function("() => !document.querySelector('.lm-TabBar-tab.jp-mod-dirty')", timeout=30_000)
    return seconds


def _saved(lab: Lab, name: str, timeout: float = 30.0) -> nbformat.NotebookNode:
    """The notebook as the browser saved it (wait for the save to land: every code cell has run)."""
    deadline = time.monotonic() + timeout
    while True:
        notebook = nbformat.read(lab.folder / name, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        if all(c.execution_count for c in code) or time.monotonic() > deadline:
            return notebook
        time.sleep(0.2)


def _unexpected_errors(notebook: nbformat.NotebookNode) -> list[str]:
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            if output.output_type == "error" and "raises-exception" not in cell.metadata.get("tags", []):
                found.append(f"cell {index}: {output.ename}: {output.evalue}")
        if cell.execution_count is None:
            found.append(f"cell {index} did not run: {cell.source.splitlines()[0] if cell.source else ''}")
    return found


def _as_committed(page) -> None:
    """What a learner sees before running anything: JupyterLab shows a saved widget output's text/plain; the tab
    is not "modified" by opening it, and no pop-up covers the notebook (issue 23)."""
    assert page.locator(".lm-TabBar-tab.jp-mod-dirty").count() == 0, "opening the notebook modified it"
    assert page.locator(".Toastify__toast").count() == 0, page.locator(".Toastify__toast").all_inner_texts()
    links = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea a')].map(a => a.href)")
    assert not [link for link in links if "127.0.0.1" in link], f"links that lead nowhere: {links}"
    shown = _outputs_text(page)
    assert "VBox(children=" not in shown and "IntProgress(" not in shown and "Loading widget" not in shown
    assert page.locator(".jp-OutputArea-output mjx-container").count() == 0  # no dollar typeset as math


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_open_then_run_all_in_chromium(workbench, lab, notebook):
    """Each notebook in order, as a learner meets it: opened as committed, then Run All, then what the learner sees.
    Opened once for both (opening a notebook starts its kernel: once, not twice)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    phases = PHASE_TIMES.setdefault(notebook.stem, {})
    started = time.monotonic()
    with workbench.opened(notebook.name) as page:
        phases["open"] = time.monotonic() - started
        _as_committed(page)
        try:
            RUN_TIMES[notebook.stem] = phases["run all"] = _run_all(page, notebook.name)
        finally:
            shot = time.monotonic()
            _screenshot(page, ARTIFACTS / f"notebook-{notebook.stem}.png")
            phases["screenshot"] = time.monotonic() - shot
        saved = _saved(lab, notebook.name)
        assert not _unexpected_errors(saved), _unexpected_errors(saved)
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        shown = _outputs_text(page)
        assert "VBox(children=" not in shown and "Loading widget" not in shown
        assert "Error displaying widget" not in shown
        if any(word in c.source for c in saved.cells for word in ("labkit.apply(", "labkit.destroy(", "config_form")):
            assert panel.locator(".jupyter-widgets").count() > 0, "no widget rendered"
        assert panel.locator(".jp-OutputArea-output mjx-container").count() == 0, "a dollar amount typeset as math"
        cells = panel.locator(".jp-OutputArea-output td").all_inner_texts()
        cut = [text for text in cells if TRUNCATED.search(text.strip())]
        assert not cut, f"values cut off: {cut}"
        closing = time.monotonic()
    phases["close"] = time.monotonic() - closing
    for index, cell in enumerate(saved.cells):  # a LabkitError: message and fix, no walk through labkit's source
        for output in cell.get("outputs", []):
            if output.output_type == "error" and "raises-exception" in cell.metadata.get("tags", []):
                text = "\n".join(output.traceback)
                assert "Traceback" not in text and "File " not in text, f"cell {index}: {text}"
                assert len(text.splitlines()) <= SHORT_TRACEBACK and "%tb" in text, f"cell {index}: {text}"
            if output.output_type == "stream" and output.name == "stderr":
                assert "raises-exception" in cell.metadata.get("tags", []), f"cell {index}: {output.text[:200]}"
    said = "\n".join(_shown(cell) for cell in saved.cells)
    for words in ENGINE_WORDS.get(notebook.stem, ()):
        assert words in said, f"{notebook.stem} does not say {words!r} on {ENGINE}"
    for words in OTHER_ENGINE_WORDS.get(notebook.stem, ()):
        assert words not in said, f"{notebook.stem} says {words!r} on {ENGINE}"


# What each notebook says on Aurora PostgreSQL, from the engine's description, and what only MySQL's would say.
ENGINE_WORDS = {
    "01_network": ("tcp 5432",),  # the exercises' checks name the engine's port
    "02_database": ("real **PostgreSQL 15** server",),
    "04_sql": (
        "aurora_db_instance_identifier()", "SQLSTATE 25006", "psql",
        "reader is read-only: cannot execute DELETE in a read-only transaction",
        "postgresql+psycopg://", "***",  # labkit.engine's repr: the driver, no password
    ),
    "05_benchmark": ("libpq's C API",),
    # a demoted writer's SQLSTATE 25006, counted as read-only through the engine's description, and no write lost
    "06_failover": ("writes refused as read-only", "Acknowledged writes lost: 0, in every run."),
}  # fmt: skip
OTHER_ENGINE_WORDS = {"01_network": ("3306",), "02_database": ("MariaDB",)}


def _shown(cell: nbformat.NotebookNode) -> str:
    """What a cell's outputs say, as text (markdown, plain text, streams, errors)."""
    parts = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        parts += [data.get("text/markdown", ""), data.get("text/plain", ""), output.get("text", "")]
        parts += [output.get("evalue", "")]
    return "\n".join(parts)


def test_a_labkit_error_in_the_browser_shows_no_traceback(workbench):
    """04's cells meant to fail, as the browser shows the run's saved outputs: the refusal and its fix only; and
    the engine's own passage rendered as markdown."""
    with workbench.opened("04_sql.ipynb") as page:
        errors = page.locator(
            ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        )
        shown = errors.all_inner_texts()
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        code = panel.locator(".jp-RenderedMarkdown code", has_text="aurora_db_instance_identifier()")
        assert code.count() >= 1, "the engine's passage (labkit.explain) is rendered as markdown"
    assert len(shown) >= 2, "04's two refusals are shown"
    assert any("read-only transaction" in text for text in shown), shown  # PostgreSQL's refusal, in its words
    for text in shown:
        assert "Traceback" not in text and "labkit/" not in text and "fix" in text, text


# ----- a learner's copy: the exercises in the browser -----

CELLS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell"
CELL_RAN = """([index, before]) => {
  const prompt = document.querySelectorAll(arguments_cells)[index].querySelector('.jp-InputPrompt').textContent;
  return /\\[\\d+\\]/.test(prompt) && prompt !== before;
}""".replace("arguments_cells", json.dumps(CELLS))


def _cell_text(page, index: int) -> str:
    return page.locator(CELLS).nth(index).locator(".jp-OutputArea").inner_text()


def _write_and_run(page, index: int, source: str | None = None) -> str:
    """Replace cell `index`'s text with `source` (as typed, but without the editor closing brackets for us), run
    it with Shift+Enter, wait for its new execution count, and return what its outputs show."""
    cell = page.locator(CELLS).nth(index)
    before = cell.locator(".jp-InputPrompt").inner_text()
    if source is not None:
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(source)
    else:
        cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(CELL_RAN, arg=[index, before], timeout=120_000, polling=100)
    return _cell_text(page, index)


def test_a_learners_copy_stops_at_the_exercise_and_checks_the_live_lab(workbench, lab):
    """01 as a learner gets it: the task shows, Run All stops at the unsolved exercise with the "your turn" note
    (no traceback), a hint comes on request, a rule by address range fails the check with the lint's reason, and
    the rule by group reference passes it."""
    from labkit.workbook.exercises import REGISTRY
    from labkit.workbook.release import release_notebooks

    started = time.monotonic()
    release = release_notebooks(lab.folder / "learner", names=["01_network"])
    assert release.created == ["01_network.ipynb"]
    copy = nbformat.read(lab.folder / "learner" / "01_network.ipynb", as_version=4)
    mine = next(i for i, c in enumerate(copy.cells) if 'labkit.your_turn("01.db-ingress")' in c.source)
    check = mine + 1
    assert copy.cells[check].source == 'labkit.exercise("01.db-ingress", config).check()'
    with workbench.opened("learner/01_network.ipynb") as page:
        task = page.locator(".jp-RenderedMarkdown h2", has_text="Your turn: let the app tier reach the database")
        assert task.count() == 1 and task.is_visible()
        _run_all_until_it_stops(page, mine)
        stopped = _cell_text(page, mine)
        assert "Your turn" in stopped and "01.db-ingress" in stopped and "by group reference" in stopped
        assert "Traceback" not in stopped and "labkit/" not in stopped
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.locator(CELLS).nth(mine).screenshot(path=str(ARTIFACTS / "learner-01-your-turn.png"))
        assert page.locator(CELLS).nth(check).locator(".jp-InputPrompt").inner_text().strip() in ("[ ]:", "[ ]")
        hint = _write_and_run(page, mine, 'labkit.exercise("01.db-ingress").hint()')
        assert "hint 1 of 2" in hint and "source_group" in hint
        _write_and_run(page, mine, f'labkit.authorize_ingress(config, group="sg-db", port={PORT}, cidr="10.0.0.0/16")')
        refused = _write_and_run(page, check)
        assert "Not yet" in refused and "10.0.0.0/16" in refused, refused
        assert f"PostgreSQL ({PORT}) allowed by CIDR, not by security group" in refused, refused
        assert "Traceback" not in refused
        page.locator(CELLS).nth(check).screenshot(path=str(ARTIFACTS / "learner-01-not-yet.png"))
        fixed = f'labkit.revoke_rules(config, group="sg-db", port={PORT})\n' + REGISTRY["01.db-ingress"].solution
        _write_and_run(page, mine, fixed)
        passed = _write_and_run(page, check)
        assert "✓ 01.db-ingress passed" in passed and "by group reference" in passed, passed
    RUN_TIMES["learner-01_network (exercise test)"] = time.monotonic() - started


STOPPED_AT = """(index) => {
  const cells = document.querySelectorAll(arguments_cells);
  const prompts = [...cells].map(c => c.querySelector('.jp-InputPrompt').textContent);
  return !prompts.some(p => p.includes('*')) && cells[index].querySelector('.jp-OutputArea').textContent.length > 0;
}""".replace("arguments_cells", json.dumps(CELLS))


def _run_all_until_it_stops(page, index: int) -> None:
    """Run All on a learner's copy, until the cell `index` (the first unsolved exercise) has its output and no cell
    is running or queued."""
    _menu(page, "Edit", "Clear Outputs of All Cells")
    _menu(page, "Run", "Run All Cells")
    page.wait_for_function(STOPPED_AT, arg=index, timeout=RUN_TIMEOUT_MS, polling=250)
