"""One API request as the daemon's middlewares see it: read and parsed once, then shared by every layer.

Runs in the daemon, in the moto server's request threads. Each middleware in front of moto (the engine catalog,
the instance states, the rotation, the SSM sessions, the save) needs the action, the region or a parameter; each
used to read the body and parse the form or the JSON again. `api_request(environ)` does it once per request and
keeps the result in the WSGI environ; the body is put back as a fresh stream for moto, which reads it itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from labkit.sandbox.signing import read_body

REQUEST_KEY = "labkit.request"  # where the parsed request is kept in the WSGI environ
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/")  # SigV4: .../date/region/service/...


@dataclass(frozen=True)
class ApiRequest:
    """What the middlewares read of a request: its method, action, SigV4 scope and parameters."""

    method: str
    body: bytes
    target: str  # X-Amz-Target of the JSON protocols ("AmazonSSM.StartSession"), else ""
    action: str  # "CreateDBInstance", "StartSession", ... ("" when it has none)
    region: str  # from the signature's credential scope ("" when unsigned)
    service: str  # the same: "rds", "ec2", "secretsmanager", ...
    form_encoded: bool = False  # a query-protocol POST (EC2, RDS, IAM, STS): its parameters are in `form`
    form: dict[str, list[str]] = field(default_factory=dict)

    def param(self, name: str, default: str = "") -> str:
        """A query-protocol parameter's first value."""
        return (self.form.get(name) or [default])[0]

    def params(self) -> dict[str, str]:
        """Every query-protocol parameter, first values."""
        return {key: values[0] for key, values in self.form.items()}

    def json(self) -> dict[str, Any]:
        """A JSON protocol's body ({} when empty or not a JSON object)."""
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def region_of(self, service: str, default: str = "") -> str:
        """The region, when the request is signed for `service`; `default` otherwise."""
        return self.region if self.service == service and self.region else default


def api_request(environ: dict[str, Any]) -> ApiRequest:
    """The request of `environ`, parsed on first use and kept for the layers behind."""
    known = environ.get(REQUEST_KEY)
    if known is not None:
        return known  # type: ignore[no-any-return]
    request = _parse(environ)
    environ[REQUEST_KEY] = request
    return request


def _parse(environ: dict[str, Any]) -> ApiRequest:
    body = read_body(environ)  # put back as a fresh stream: moto reads it again, from the start
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    region, service = (scope.group(1), scope.group(2)) if scope else ("", "")
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    form_encoded = "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", "")
    form = parse_qs(body.decode(errors="replace")) if form_encoded else {}
    action = target.rpartition(".")[2] if target else (form.get("Action") or [""])[0]
    method = environ.get("REQUEST_METHOD", "")
    return ApiRequest(method, body, target, action, region, service, form_encoded, form)
