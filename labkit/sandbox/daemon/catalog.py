"""The RDS engine catalog moto lacks: DescribeDBEngineVersions and DescribeOrderableDBInstanceOptions for the
Aurora engines labkit describes, answered from each description's bundled catalog (labkit.engines).

Runs in the daemon, as WSGI middleware in front of moto (in the moto server's request threads). labkit resolves
the engine version at plan time from these two calls (labkit/lab/engine.py), as it must on AWS where a pinned
minor version retires; moto implements neither for Aurora's engines, so without this the sandbox could only say
"not checked". Each engine's catalog is what RDS showed in us-east-1 on its date; like the price table it has an
as-of date, and every region answers the same. Other engines go on to moto.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape

from labkit.engines import ENGINES, AuroraEngine, default_engine
from labkit.sandbox.daemon.request import api_request

ACTIONS = ("DescribeDBEngineVersions", "DescribeOrderableDBInstanceOptions")


def engine_versions(params: dict[str, str], engine: AuroraEngine) -> list[dict[str, str]]:
    """DBEngineVersions for the request's filters (DefaultOnly, EngineVersion, IncludeAll)."""
    catalog = engine.catalog
    chosen = [catalog.default] if params.get("DefaultOnly", "").lower() == "true" else list(catalog.versions)
    if params.get("EngineVersion"):
        chosen = [v for v in chosen if v == params["EngineVersion"]]
    if params.get("IncludeAll", "").lower() != "true":
        chosen = [v for v in chosen if catalog.versions[v] == "available"]
    return [
        {"Engine": engine.name, "EngineVersion": v, "DBParameterGroupFamily": catalog.family_of(v)[0],
         "MajorEngineVersion": catalog.family_of(v)[1], "Status": catalog.versions[v]}
        for v in chosen
    ]  # fmt: skip


def orderable_options(params: dict[str, str], region: str, engine: AuroraEngine) -> list[dict[str, Any]]:
    """OrderableDBInstanceOptions: each listed class for each available version that runs on it (the catalog's
    per-version limits), in the region's three zones."""
    catalog = engine.catalog
    versions = [v for v, status in catalog.versions.items() if status == "available"]
    if params.get("EngineVersion"):
        versions = [v for v in versions if v == params["EngineVersion"]]
    classes = [c for c in engine.instance_classes if c == params.get("DBInstanceClass", c)]
    zones = [f"{region}{letter}" for letter in "abc"]
    options = [
        {"engine": engine.name, "version": v, "class": c, "zones": zones}
        for v in versions
        for c in classes
        if catalog.orderable(v, c)
    ]
    limit = int(params.get("MaxRecords") or len(options) or 1)
    return options[:limit]


def _xml_versions(items: Iterable[dict[str, str]]) -> str:
    return "".join(
        "<DBEngineVersion>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items()) + "</DBEngineVersion>"
        for item in items
    )


def _xml_options(items: Iterable[dict[str, Any]]) -> str:
    return "".join(
        f"<OrderableDBInstanceOption><Engine>{escape(o['engine'])}</Engine><EngineVersion>{escape(o['version'])}</EngineVersion>"
        f"<DBInstanceClass>{escape(o['class'])}</DBInstanceClass><AvailabilityZones>"
        + "".join(f"<AvailabilityZone><Name>{escape(z)}</Name></AvailabilityZone>" for z in o["zones"])
        + "</AvailabilityZones><Vpc>true</Vpc><SupportsClusters>true</SupportsClusters></OrderableDBInstanceOption>"
        for o in items
    )


class EngineCatalog:
    """WSGI middleware: the two catalog calls for a described engine (or with no Engine: the default engine's)
    are answered here."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = api_request(environ)
        if request.method != "POST" or not request.form_encoded:
            return self.app(environ, start_response)
        params = request.params()
        action = request.action
        engine = ENGINES.get(params.get("Engine", default_engine().name))
        if action not in ACTIONS or engine is None:
            return self.app(environ, start_response)
        region = request.region_of("rds", "us-east-1")
        if action == "DescribeDBEngineVersions":
            result = f"<DBEngineVersions>{_xml_versions(engine_versions(params, engine))}</DBEngineVersions>"
        else:
            options = _xml_options(orderable_options(params, region, engine))
            result = f"<OrderableDBInstanceOptions>{options}</OrderableDBInstanceOptions>"
        answer = (
            f'<{action}Response xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><{action}Result>{result}'
            f"</{action}Result><ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId></ResponseMetadata>"
            f"</{action}Response>"
        ).encode()
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(answer)))])
        return [answer]
