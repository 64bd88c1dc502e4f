"""The RDS engine catalog moto lacks: DescribeDBEngineVersions and DescribeOrderableDBInstanceOptions for
aurora-mysql, answered from a bundled list.

Runs in the daemon, as WSGI middleware in front of moto (in the moto server's request threads). labkit resolves
the engine version at plan time from these two calls (labkit/lab/engine.py), as it must on AWS where a pinned
minor version retires; moto implements neither for aurora-mysql, so without this the sandbox could only say "not
checked". The list is Aurora MySQL 3 as RDS showed it in us-east-1 on the date below (Aurora MySQL release notes:
3.05 to 3.07 deprecated, 3.04 and 3.10 the long-term-support lines); like the price table it has an as-of date,
and every region answers the same. Other engines go on to moto.
"""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from labkit.config import AURORA_MYSQL_INSTANCE_CLASSES

AS_OF = "2026-11-01"
ENGINE = "aurora-mysql"
VERSIONS = {
    "8.0.mysql_aurora.3.04.3": "available",
    "8.0.mysql_aurora.3.04.4": "available",
    "8.0.mysql_aurora.3.05.2": "deprecated",
    "8.0.mysql_aurora.3.06.1": "deprecated",
    "8.0.mysql_aurora.3.07.1": "deprecated",
    "8.0.mysql_aurora.3.08.0": "available",
    "8.0.mysql_aurora.3.08.2": "available",
    "8.0.mysql_aurora.3.09.0": "available",
    "8.0.mysql_aurora.3.10.0": "available",
    "8.0.mysql_aurora.3.10.1": "available",
}
DEFAULT = "8.0.mysql_aurora.3.10.1"
ACTIONS = ("DescribeDBEngineVersions", "DescribeOrderableDBInstanceOptions")
_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/rds/")


def engine_versions(params: dict[str, str]) -> list[dict[str, str]]:
    """DBEngineVersions for the request's filters (DefaultOnly, EngineVersion, IncludeAll)."""
    chosen = [DEFAULT] if params.get("DefaultOnly", "").lower() == "true" else list(VERSIONS)
    if params.get("EngineVersion"):
        chosen = [v for v in chosen if v == params["EngineVersion"]]
    if params.get("IncludeAll", "").lower() != "true":
        chosen = [v for v in chosen if VERSIONS[v] == "available"]
    return [
        {"Engine": ENGINE, "EngineVersion": v, "DBParameterGroupFamily": "aurora-mysql8.0",
         "MajorEngineVersion": "8.0", "Status": VERSIONS[v]}
        for v in chosen
    ]  # fmt: skip


def orderable_options(params: dict[str, str], region: str) -> list[dict[str, Any]]:
    """OrderableDBInstanceOptions: every listed class for every available version, in the region's three zones."""
    versions = [v for v, status in VERSIONS.items() if status == "available"]
    if params.get("EngineVersion"):
        versions = [v for v in versions if v == params["EngineVersion"]]
    classes = [c for c in AURORA_MYSQL_INSTANCE_CLASSES if c == params.get("DBInstanceClass", c)]
    zones = [f"{region}{letter}" for letter in "abc"]
    options = [{"version": v, "class": c, "zones": zones} for v in versions for c in classes]
    limit = int(params.get("MaxRecords") or len(options) or 1)
    return options[:limit]


def _xml_versions(items: Iterable[dict[str, str]]) -> str:
    return "".join(
        "<DBEngineVersion>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items()) + "</DBEngineVersion>"
        for item in items
    )


def _xml_options(items: Iterable[dict[str, Any]]) -> str:
    return "".join(
        f"<OrderableDBInstanceOption><Engine>{ENGINE}</Engine><EngineVersion>{escape(o['version'])}</EngineVersion>"
        f"<DBInstanceClass>{escape(o['class'])}</DBInstanceClass><AvailabilityZones>"
        + "".join(f"<AvailabilityZone><Name>{escape(z)}</Name></AvailabilityZone>" for z in o["zones"])
        + "</AvailabilityZones><Vpc>true</Vpc><SupportsClusters>true</SupportsClusters></OrderableDBInstanceOption>"
        for o in items
    )


class EngineCatalog:
    """WSGI middleware: the two catalog calls for aurora-mysql (or with no Engine) are answered here."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") != "POST" or "x-www-form-urlencoded" not in environ.get("CONTENT_TYPE", ""):
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        params = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        action = params.get("Action", "")
        if action not in ACTIONS or params.get("Engine", ENGINE) != ENGINE:
            return self.app(environ, start_response)
        region = (_REGION.search(environ.get("HTTP_AUTHORIZATION", "")) or [None, "us-east-1"])[1]
        if action == "DescribeDBEngineVersions":
            result = f"<DBEngineVersions>{_xml_versions(engine_versions(params))}</DBEngineVersions>"
        else:
            options = _xml_options(orderable_options(params, region))
            result = f"<OrderableDBInstanceOptions>{options}</OrderableDBInstanceOptions>"
        answer = (
            f'<{action}Response xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><{action}Result>{result}'
            f"</{action}Result><ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId></ResponseMetadata>"
            f"</{action}Response>"
        ).encode()
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(answer)))])
        return [answer]
