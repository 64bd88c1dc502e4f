"""The test suite's guard against real AWS: every configured AWS endpoint must be on loopback, and no
credential lookup may leave the machine.

botocore takes an endpoint from several places, each overriding in-process moto or the sandbox
(AWS SDKs and Tools Reference Guide, "Service-specific endpoints"): the AWS_ENDPOINT_URL variable, one
AWS_ENDPOINT_URL_<SERVICE> variable per service (the service id, upper case, spaces as underscores, e.g.
AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL_SECRETS_MANAGER), `endpoint_url` in a profile of the shared config
file, and `endpoint_url` in a service of a `[services NAME]` section. Any of them that is not on loopback
could send signed requests from a test somewhere else, so the session refuses to start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path

from labkit.aws.backend import is_loopback_url

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"
CONFIG_KEY = "endpoint_url"

# Past the environment's keys, botocore's credential chain asks the network: the instance metadata service
# (169.254.169.254, and its region lookup), a container's credentials endpoint, STS with a web identity token.
# A test that removes the fake keys (to see "no credentials") must get none found, never a packet off loopback.
NO_NETWORK_LOOKUPS = {"AWS_EC2_METADATA_DISABLED": "true"}
NETWORK_LOOKUP_VARIABLES = (
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


def foreign_endpoint_variables(environ: Mapping[str, str]) -> list[str]:
    """`NAME=value` of every AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_<SERVICE> variable not on loopback."""
    return [
        f"{name}={value}"
        for name, value in sorted(environ.items())
        if (name == ENDPOINT_VARIABLE or name.startswith(ENDPOINT_VARIABLE + "_"))
        and value.strip()
        and not is_loopback_url(value.strip())
    ]


def _endpoints_in(section: Mapping[str, object], where: str) -> Iterator[tuple[str, str]]:
    """(where, url) for an endpoint_url of a section, and of its nested per-service blocks (`rds =` + indent)."""
    for key, value in section.items():
        if key == CONFIG_KEY and isinstance(value, str):
            yield where, value
        elif isinstance(value, Mapping):
            yield from _endpoints_in(value, f"{where}.{key}")


def foreign_config_endpoints(path: str | os.PathLike[str]) -> list[str]:
    """`file [section].key = url` of every endpoint_url in an AWS config file that is not on loopback.

    Parsed with botocore's own loader, so a setting botocore would honour is seen as botocore sees it.
    """
    from botocore.configloader import load_config
    from botocore.exceptions import ConfigNotFound, ConfigParseError

    file = Path(path).expanduser()
    if not file.is_file():
        return []
    try:
        parsed = load_config(str(file))
    except ConfigNotFound:
        return []
    except ConfigParseError as exc:  # a file botocore cannot read is one whose endpoints nobody can vouch for
        return [f"{file}: cannot be parsed ({exc})"]
    found: list[tuple[str, str]] = []
    for profile, settings in parsed.get("profiles", {}).items():
        found += _endpoints_in(settings, f"[profile {profile}]")
    for name, settings in parsed.get("services", {}).items():
        found += _endpoints_in(settings, f"[services {name}]")
    return [f"{file} {where}.{CONFIG_KEY} = {url}" for where, url in found if not is_loopback_url(url.strip())]


def config_files(environ: Mapping[str, str]) -> list[str]:
    """The shared config file botocore reads for `environ`: AWS_CONFIG_FILE, else ~/.aws/config."""
    return [environ.get("AWS_CONFIG_FILE") or "~/.aws/config"]


def foreign_endpoints(environ: Mapping[str, str], extra_files: tuple[str, ...] = ()) -> list[str]:
    """Every endpoint setting in `environ` and its config file (and `extra_files`) that is not on loopback."""
    found = foreign_endpoint_variables(environ)
    for file in dict.fromkeys([*config_files(environ), *extra_files]):
        found += foreign_config_endpoints(file)
    return found


def without_network_lookups(environ: MutableMapping[str, str]) -> None:
    """Make botocore's credential chain stop before any lookup that leaves this machine (set before boto3 runs)."""
    for name in NETWORK_LOOKUP_VARIABLES:
        environ.pop(name, None)
    environ.update(NO_NETWORK_LOOKUPS)


def network_lookups(environ: Mapping[str, str]) -> list[str]:
    """Every setting in `environ` that lets the credential chain ask an address off loopback."""
    found = [
        f"{name}={environ.get(name, '')} (must be {value}: the credential chain would ask 169.254.169.254)"
        for name, value in NO_NETWORK_LOOKUPS.items()
        if environ.get(name, "").strip().lower() != value
    ]
    return found + [f"{name}={environ[name]}" for name in NETWORK_LOOKUP_VARIABLES if environ.get(name)]


def refusal(found: list[str]) -> str:
    """The message the session exits with."""
    lines = "\n  ".join(found)
    return (
        "refusing to run: these AWS settings are not on loopback and could send a test's requests to "
        f"real AWS or a stranger:\n  {lines}\nunset them (or point them at 127.0.0.1) and run the tests again"
    )
