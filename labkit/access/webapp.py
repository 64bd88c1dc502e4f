"""The web app from the notebook: a Session Manager tunnel to port 8080 on the instance, a link, and calls.

app = web_app()                  # opens the tunnel, waits until the app answers
app                              # a link to open it in the browser
app.health()                     # writer and reader reachability, as the app sees them
app.add_order("Ada", product_id=3, quantity=2)   # the same form a browser submits
"""

from __future__ import annotations

import html
import http.client
import json
import re
import time
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from labkit.access.tunnel import Tunnel
from labkit.aws.backend import Backend
from labkit.aws.errors import backoff
from labkit.config import lab_and_backend
from labkit.errors import ConfigError, LabkitError

TOKEN = re.compile(r'name="token" value="([^"]*)"')
FIELD_ERROR = re.compile(r'id="(\w+)-error">([^<]*)<')
PROBLEM = re.compile(r'id="problem">([^<]*)<')
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
        """Writer and reader as the app sees them: reachable, read-only (a replica), error (and the round trip)."""
        _, _, text = self.request("GET", "/health")
        report = json.loads(text)
        rows = [
            {
                "endpoint": role,
                "ok": bool(report[role]["ok"]),
                "read_only": report[role].get("read_only"),
                "error": report[role].get("error", ""),
                **({"ms": report[role].get("ms")} if timings else {}),
            }
            for role in ("writer", "reader")
        ]
        return pd.DataFrame(rows)

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
