"""The web app from the notebook: a Session Manager tunnel to port 8080 on the instance, a link, and calls.

app = web_app()                  # opens the tunnel, waits until the app answers
app                              # a link to open it in the browser
app.health()                     # writer and reader reachability, as the app sees them
app.add_order("Ada", product_id=3, quantity=2)   # the same form a browser submits
app.configure(reads_from="writer")               # change the app's supported setting and restart it
app_code("discover", "Database.read")            # the lines of the shipped app that do it
"""

from __future__ import annotations

import ast
import html
import http.client
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from labkit.access.tunnel import Tunnel
from labkit.app.server import ENDPOINTS
from labkit.app.userdata import app_source
from labkit.aws.backend import Backend
from labkit.aws.errors import backoff
from labkit.config import lab_and_backend
from labkit.errors import ConfigError, LabkitError

TOKEN = re.compile(r'name="token" value="([^"]*)"')
FIELD_ERROR = re.compile(r'id="(\w+)-error">([^<]*)<')
PROBLEM = re.compile(r'id="problem">([^<]*)<')
SERVED_BY = re.compile(r'id="served-by">([^<]*)<')
APP_FILE = "labkit/app/server.py"  # as the user data installs it: /opt/labkit/shop_app.py on the instance
ON_THE_READER = "is now visible on the reader"  # the app's notice once the reader shows an added order
HTTP_TIMEOUT = 15.0


class WebApp:
    """The lab's web app, reached through a tunnel held open by this object."""

    def __init__(self, tunnel: Any) -> None:
        self.tunnel = tunnel

    @property
    def url(self) -> str:
        return f"http://{self.tunnel.address}/"

    def __repr__(self) -> str:
        return f"<WebApp at {self.url} via {self.tunnel.target.instance_id if self.tunnel.target else '?'}>"

    def _repr_html_(self) -> str:
        url = html.escape(self.url)
        return (
            f'<p>The lab shop is open at <a href="{url}" target="_blank" rel="noopener">{url}</a> '
            f"(port 8080 on {html.escape(self.tunnel.target.instance_id)}, through Session Manager).</p>"
        )

    def close(self) -> None:
        self.tunnel.close()

    def __enter__(self) -> WebApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- HTTP -----
    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, dict[str, str], str]:
        """One HTTP request through the tunnel: (status, headers, text).

        A tunnel whose session has ended (Session Manager's idle timeout) is reopened once, saying why, before
        the request is sent; one that ends as the request connects is reopened and the request sent again
        (nothing was sent, so a form is never posted twice).
        """
        self.tunnel.revive()
        connection = http.client.HTTPConnection(self.tunnel.host, self.tunnel.port, timeout=HTTP_TIMEOUT)
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        try:
            try:
                connection.connect()
            except OSError:
                if not self.tunnel.revive():  # not a session that ended: report the failure below
                    raise
                connection.close()
                connection = http.client.HTTPConnection(self.tunnel.host, self.tunnel.port, timeout=HTTP_TIMEOUT)
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
        except (OSError, http.client.HTTPException) as exc:
            refusal = self.tunnel.recent_refusal(wait=0.5)
            raise LabkitError(
                f"the web app did not answer through the tunnel: {refusal or exc}",
                field="app",
                fix="check app.health() and the instance (notebook 03); on AWS the app installs at first boot, "
                "a few minutes after the instance starts (log: /var/log/labkit-app-install.log)",
            ) from None
        finally:
            connection.close()

    def health(self, timings: bool = False) -> pd.DataFrame:
        """Writer and reader endpoints as the app sees them: reachable, the instance that answered, read-only
        (a replica), whether the page reads through it, error (and the round trip)."""
        report = self.health_report()
        rows = [
            {
                "endpoint": endpoint,
                "ok": bool(report[endpoint]["ok"]),
                "served_by": report[endpoint].get("served_by", ""),
                "read_only": report[endpoint].get("read_only"),
                "page_reads_here": report.get("reads_from", "reader") == endpoint,
                "error": report[endpoint].get("error", ""),
                **({"ms": report[endpoint].get("ms")} if timings else {}),
            }
            for endpoint in ENDPOINTS
        ]
        return pd.DataFrame(rows)

    def health_report(self) -> dict[str, Any]:
        """/health as the app answers it (JSON): `reads_from`, and per endpoint ok, served_by, read_only, error."""
        _, _, text = self.request("GET", "/health")
        return json.loads(text)

    def page(self) -> dict[str, Any]:
        """The shop page as a browser gets it: its status, the instance that served its read, its problem."""
        status, _, text = self.request("GET", "/")
        served, problem = SERVED_BY.search(text), PROBLEM.search(text)
        return {
            "status": status,
            "served_by": html.unescape(served.group(1)) if served else "",
            "problem": html.unescape(problem.group(1)) if problem else "",
        }

    def configure(self, *, reads_from: str) -> pd.DataFrame:
        """Set the app's LABKIT_APP_READS_FROM (the endpoint its page reads through: 'reader' or 'writer') in
        its environment file on the instance, restart it, and return its health once it runs with it.

        On AWS, SSM Run Command edits /etc/labkit-app.env and restarts the service; the sandbox runs the same
        script on its copy of the file and restarts the app's process."""
        if reads_from not in ENDPOINTS:
            raise ConfigError(
                f"reads_from={reads_from!r}", field="reads_from", fix="use 'reader' (the default) or 'writer'"
            )
        backend = self.tunnel.backend
        backend.restart_app(self.tunnel.target.instance_id, {"LABKIT_APP_READS_FROM": reads_from})
        deadline = time.monotonic() + backend.app_timing.start_timeout
        while True:
            try:
                if self.health_report().get("reads_from", "reader") == reads_from:
                    return self.health()
            except (LabkitError, ValueError):  # restarting: nothing listens for a moment
                pass
            if time.monotonic() > deadline:
                raise LabkitError(
                    f"the web app did not come back with reads_from={reads_from!r}",
                    field="reads_from",
                    fix="check app.health(); on AWS the app's log is `journalctl -u labkit-app` on the instance",
                )
            time.sleep(backend.app_timing.poll_seconds)

    def add_order(self, customer: str, product_id: int, quantity: int = 1, *, reader_wait: float = 5.0) -> int:
        """Submit the page's form, as a browser does; returns the new order's id.

        Like a browser, it follows the app's redirect to the page that says whether the reader shows the order yet,
        reloading it while the reader lags (replication is asynchronous, usually milliseconds behind), for at
        most `reader_wait` seconds: the next cell's read on the reader then sees the order it just added.
        """
        status, _, page = self.request("GET", "/")
        token = TOKEN.search(page)
        if token is None:
            problem = PROBLEM.search(page)
            raise LabkitError(
                f"the web app cannot take orders now: {html.unescape(problem.group(1)) if problem else status}",
                field="app",
                fix="check app.health(); create the tables with labkit.create_schema() if they are missing",
            )
        form = {"token": html.unescape(token.group(1)), "customer": customer, "product_id": product_id,
                "quantity": quantity}  # fmt: skip
        status, headers, page = self.request("POST", "/orders", urlencode(form))
        if status == 303:
            self._reload_until_the_reader_shows_it(headers["location"], reader_wait)
            return int(headers["location"].rpartition("=")[2])
        errors = {name: html.unescape(message) for name, message in FIELD_ERROR.findall(page)}
        if errors:
            name, message = next(iter(errors.items()))
            raise ConfigError(f"the app refused {name}={form[name]!r}", field=name, fix=message)
        problem = PROBLEM.search(page)
        raise LabkitError(
            f"the web app answered {status}: {html.unescape(problem.group(1)) if problem else page[:200]}",
            field="app",
            fix="check app.health()",
        )

    def _reload_until_the_reader_shows_it(self, location: str, timeout: float) -> bool:
        """GET the page the app redirected to until it reports the order on the reader, or `timeout` s pass."""
        pauses = backoff(0.01, 0.2, deadline=time.monotonic() + timeout)
        while True:
            _, _, page = self.request("GET", location)
            if ON_THE_READER in page:
                return True
            if next(pauses, None) is None:
                return False

    def wait_until_answering(self, timeout: float) -> None:
        """Block until the app answers HTTP (any status) or `timeout` s pass."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.request("GET", "/health")
                return
            except LabkitError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(self.tunnel.backend.app_timing.poll_seconds)


@dataclass(frozen=True)
class AppCode:
    """Lines of the web app's source, each part named and numbered as in the file the instance runs."""

    parts: tuple[tuple[str, int, str], ...]  # (name, first line number, text)

    def __str__(self) -> str:
        blocks = []
        for name, first, text in self.parts:
            lines = text.splitlines()
            numbered = "\n".join(f"{first + i:4d}  {line}" for i, line in enumerate(lines))
            blocks.append(f"{APP_FILE}, lines {first}-{first + len(lines) - 1}: {name}\n{numbered}")
        return "\n\n".join(blocks)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from pygments import highlight  # JupyterLab's own dependency: only a notebook shows this
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        blocks = []
        for name, first, text in self.parts:
            end = first + len(text.splitlines()) - 1
            formatter = HtmlFormatter(linenos="inline", linenostart=first, noclasses=True, nobackground=True)
            blocks.append(
                f"<p><code>{APP_FILE}</code>, lines {first}-{end}: <b>{html.escape(name)}</b></p>"
                + highlight(text, PythonLexer(), formatter)
            )
        return "".join(blocks)


def app_code(*names: str) -> AppCode:
    """The lines of the shipped web app that define each name (a function, a class, or `Class.method`), read
    from the very source the instance's user data installs, found by name (not by line number)."""
    if not names:
        raise ConfigError("name at least one function", field="names", fix='e.g. app_code("discover")')
    source = app_source()
    tree = ast.parse(source)
    lines = source.splitlines()
    parts = []
    for name in names:
        node = _definition(tree, name)
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        parts.append((name, first, "\n".join(lines[first - 1 : node.end_lineno])))
    return AppCode(tuple(parts))


def _definition(tree: ast.Module, name: str) -> ast.AST:
    """The function or class `name` (or `Class.method`) at the top of the app's module."""
    scope: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for part in name.split("."):
        node = next((n for n in scope if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == part), None)
        if node is None:
            defined = sorted(n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef))
            raise ConfigError(
                f"the web app defines no {name!r}", field="names", fix=f"use one of: {', '.join(defined)}"
            )
        scope = getattr(node, "body", [])
    assert node is not None
    return node


def web_app(
    config: Any | None = None,
    backend: Backend | None = None,
    *,
    local_port: int | None = None,
    timeout: float | None = None,
) -> WebApp:
    """Open a tunnel to the lab's web app (port 8080 on the instance) and wait until it answers."""
    if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
        raise ConfigError(f"timeout={timeout!r} is not a positive number of seconds", field="timeout", fix="e.g. 30")
    config, backend = lab_and_backend(config, backend)
    tunnel = Tunnel("app", local_port, config=config, backend=backend).open()
    app = WebApp(tunnel)
    try:
        app.wait_until_answering(timeout if timeout is not None else backend.app_timing.start_timeout)
    except BaseException:
        tunnel.close()
        raise
    return app
