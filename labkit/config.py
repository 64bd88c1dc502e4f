"""The lab's inputs as one validated object: every bad value is refused here, before any AWS call.

Settable in Python (`LabConfig(readers=2)`), from a TOML file (`LabConfig.load(path)`) and from CLI flags.
Each rule raises a ConfigError that names the field and says how to fix it. Each field carries its flag's help
text as metadata, so the `labkit` config flags are generated from the fields and a new field gets its flag.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

from labkit.aws.regions import botocore_data, check_region, partition_of
from labkit.aws.tags import (
    NODE_CLUSTER,
    NODE_DB_SUBNET_GROUP,
    NODE_FIRST_DB,
    NODE_IAM_ROLE,
    NODE_INSTANCE_PROFILE,
    NODE_KEY_PAIR,
    NODE_SG_APP,
    db_instance_node,
    resource_name,
)
from labkit.checks import require_str, suggest
from labkit.engines import DEFAULT_ENGINE, ENGINES
from labkit.errors import ConfigError
from labkit.home import labkit_home

if TYPE_CHECKING:
    from labkit.aws.backend import Backend
    from labkit.engines import AuroraEngine

CONFIG_FILE_NAME = "lab.toml"
MAX_READERS = 15  # Aurora allows up to 15 replicas per cluster
VPC_PREFIX_RANGE = (16, 26)  # AWS allows /16 to /28; the lab splits the VPC into four subnets
# 'default' and 'lts' are resolved at plan time (labkit/lab/engine.py); a pinned version must follow the engine's
# rule (labkit.engines: its pattern, in ASCII digits).
ENGINE_VERSION_WORDS = ("default", "lts")
NAME_PART_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
VPC_ID_PATTERN = re.compile(r"^vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_VERSION_EXAMPLES = " or ".join(f"{e.versions.example} ({e.display_name})" for e in ENGINES.values())
_ENGINE_CHOICES = " or ".join(repr(name) for name in ENGINES)

# Names built from lab and learner, and the longest each AWS service accepts.
NAME_LIMITS = {
    "RDS cluster identifier": (NODE_CLUSTER, 63),
    "RDS instance identifier": (NODE_FIRST_DB, 63),
    "DB subnet group name": (NODE_DB_SUBNET_GROUP, 255),
    "IAM role name": (NODE_IAM_ROLE, 64),
    "IAM instance profile name": (NODE_INSTANCE_PROFILE, 128),
    "security group name": (NODE_SG_APP, 255),
    "key pair name": (NODE_KEY_PAIR, 255),
}


@lru_cache(maxsize=1)
def known_instance_types() -> frozenset[str]:
    """EC2 instance types named in botocore's bundled EC2 model."""
    model = botocore_data().get_service_model("ec2")
    return frozenset(model.shape_for("InstanceType").enum)


def _backend_from_env() -> str | None:
    """What LABKIT_BACKEND names (None when unset); a value that is not a backend raises a ConfigError."""
    from labkit.aws.backend import backend_from_env  # start-up time: boto3; `labkit --help` reads this module

    return backend_from_env()


def _default_backend() -> str:
    """The backend when no flag names one: LABKIT_BACKEND, else the sandbox (a config file's `backend` is
    overridden by LABKIT_BACKEND in `LabConfig.load`: the environment wins over a file, as for AWS_REGION)."""
    return _backend_from_env() or "sandbox"


@dataclass(eq=True)
class LabConfig:
    """Everything that decides what the lab creates. Invalid values raise ConfigError at once.

    `metadata["help"]` is the field's `--flag` help in `labkit plan --help`; kept here so a field and its
    flag cannot drift apart.
    """

    lab: str = dataclasses.field(
        default="auroralab", metadata={"help": "lab name, the first part of every resource name (default auroralab)"}
    )
    learner: str = dataclasses.field(
        default="learner1", metadata={"help": "learner name, the second part of every resource name (default learner1)"}
    )
    region: str = dataclasses.field(default="us-east-1", metadata={"help": "AWS region code (default us-east-1)"})
    backend: str = dataclasses.field(
        default_factory=_default_backend,
        metadata={
            "help": "sandbox (local, free) or aws (your real account); default: LABKIT_BACKEND, else the config "
            "file's backend, else sandbox"
        },
    )
    vpc: str = dataclasses.field(
        default="create",
        metadata={"help": "'create' (default), 'default' (the region's default VPC) or an existing VPC id"},
    )
    vpc_cidr: str = dataclasses.field(
        default="10.42.0.0/16", metadata={"help": "IPv4 block of a created VPC (default 10.42.0.0/16)"}
    )
    engine: str = dataclasses.field(
        default=DEFAULT_ENGINE,
        metadata={"help": f"the Aurora engine: {_ENGINE_CHOICES} (default {DEFAULT_ENGINE})"},
    )
    engine_version: str = dataclasses.field(
        default="default",
        metadata={
            "help": "the engine's version: 'default' (the region's default, resolved at plan time; the default), "
            f"'lts' (the newest long-term-support release) or a version such as {_VERSION_EXAMPLES}"
        },
    )
    db_instance_class: str = dataclasses.field(
        default="db.t4g.medium", metadata={"help": "class of the writer and readers (default db.t4g.medium)"}
    )
    readers: int = dataclasses.field(default=1, metadata={"help": "number of reader instances, 0 to 15 (default 1)"})
    instance_type: str = dataclasses.field(
        default="t3.micro", metadata={"help": "EC2 instance type (default t3.micro)"}
    )
    ssh_cidr: str | None = dataclasses.field(
        default=None, metadata={"help": "allow SSH from this one address (a /32); 'none' for no SSH (the default)"}
    )
    key_pair: bool = dataclasses.field(
        default=False, metadata={"help": "create a key pair and keep its private key under the labkit home"}
    )
    deletion_protection: bool = dataclasses.field(
        default=False, metadata={"help": "protect the cluster from deletion (destroy turns it off first)"}
    )

    def __post_init__(self) -> None:
        for name, value in _validated(self).items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_ready", True)

    def __setattr__(self, name: str, value: Any) -> None:
        """Assigning a field validates it too: `config.readers = 99` raises like the constructor would."""
        if getattr(self, "_ready", False) and name in field_names():
            value = getattr(dataclasses.replace(self, **{name: value}), name)
        object.__setattr__(self, name, value)

    # ----- derived values -----
    def name(self, node: str) -> str:
        """The Name of the resource for graph node `node`, prefixed by lab and learner."""
        return resource_name(self.lab, self.learner, node)

    def subnet_cidrs(self) -> tuple[str, str, str]:
        """CIDRs of the public subnet and the two database subnets: the first three quarters of the VPC."""
        network = ipaddress.IPv4Network(self.vpc_cidr)
        quarters = list(network.subnets(prefixlen_diff=2))
        return str(quarters[0]), str(quarters[1]), str(quarters[2])

    @property
    def db_port(self) -> int:
        """The port the lab's database listens on: its engine's (what a security-group rule for it names)."""
        return ENGINES[self.engine].port

    @property
    def partition(self) -> str:
        """The AWS partition of the region (aws, aws-cn, aws-us-gov, ...)."""
        return partition_of(self.region)

    @staticmethod
    def engine_help() -> str:
        """The `engine` field's help, for a command that takes --engine without every config flag."""
        return next(f for f in dataclasses.fields(LabConfig) if f.name == "engine").metadata["help"]

    def make_backend(self) -> Backend:
        """The backend this config names, in its region."""
        from labkit.aws.backend import get_backend  # start-up time: boto3; `labkit --help` reads this module

        return get_backend(self.backend, self.region)

    def _repr_html_(self) -> str:
        """The notebook view: each `field=value` kept whole, so a narrow window wraps between fields and never
        inside a name or a value (the text repr is one long line that JupyterLab breaks anywhere)."""
        import html  # only a notebook asks for HTML

        items = ", ".join(
            f'<span style="white-space: nowrap"><code>{html.escape(f"{name}={value!r}")}</code></span>'
            for name, value in self.to_dict().items()
        )
        return f"<p>LabConfig({items})</p>"

    # ----- dict, TOML -----
    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in field_names()}

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str = "config") -> LabConfig:
        """Build from a dict (TOML table, CLI flags); strings are accepted for numbers and booleans."""
        unknown = sorted(set(data) - set(field_names()))
        if unknown:
            raise ConfigError(
                f"unknown setting in {source}{suggest(unknown[0], field_names())}",
                field=unknown[0],
                fix=f"use only these fields: {', '.join(field_names())}",
            )
        values = {name: _coerce(name, value) for name, value in data.items()}
        return cls(**values)

    def to_toml(self) -> str:
        """The config as a small TOML document (written by hand: the standard library only reads TOML)."""
        lines = ["# labkit lab config: edit, then `labkit plan` (or LabConfig.load() in a notebook)", ""]
        for name, value in self.to_dict().items():
            if value is None:
                lines.append(f'# {name} = "203.0.113.7/32"   # unset: no SSH rule at all')
            elif isinstance(value, bool):
                lines.append(f"{name} = {'true' if value else 'false'}")
            elif isinstance(value, int):
                lines.append(f"{name} = {value}")
            else:
                lines.append(f"{name} = {json.dumps(value)}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def default_path() -> Path:
        """Where the lab config of this LABKIT home lives."""
        return labkit_home() / CONFIG_FILE_NAME

    @classmethod
    def load(cls, path: str | Path | None = None) -> LabConfig:
        """Read a TOML config; with no path, the home's lab.toml (or the defaults when it does not exist).

        LABKIT_BACKEND, when set, wins over the file's `backend` (the environment over a file, the usual rule), so
        `LABKIT_BACKEND=aws` is never silently ignored once notebook 00 has saved a lab.toml; a flag or an
        explicit `LabConfig(backend=...)` still wins over both."""
        if path is None:
            path = cls.default_path()
            if not path.exists():
                return cls()
        path = Path(path).expanduser()
        try:
            data = tomllib.loads(read_config_text(path))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{path} is not valid TOML ({exc})",
                field="config",
                fix='write one `field = value` per line, strings in "quotes"',
            ) from None
        from_env = _backend_from_env()
        if from_env is not None:
            data["backend"] = from_env
        return cls.from_mapping(data, source=str(path))

    def save(self, path: str | Path | None = None) -> Path:
        """Write the config as TOML (default: the home's lab.toml, where notebooks and the CLI find it)."""
        target = Path(path).expanduser() if path is not None else self.default_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.to_toml())
        return target


MAX_CONFIG_BYTES = 64 * 1024  # a lab.toml is a dozen lines; anything bigger is the wrong file


def read_config_text(path: Path) -> str:
    """The text of a config file, or a ConfigError naming `config` for anything that is not a small UTF-8 text
    file: a folder, a device or /proc file, a binary file, a byte-order mark (which TOML parsers reject as a
    bare "invalid statement at line 1")."""
    fix = "give --config a small TOML text file, e.g. LABKIT_HOME/lab.toml written by `labkit up --save` or notebook 00"
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist", field="config", fix="check the path given to --config")
    if not path.is_file():
        raise ConfigError(f"{path} is not a regular file", field="config", fix=fix)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror or exc})", field="config", fix=fix) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is over {MAX_CONFIG_BYTES // 1024} KiB: not a lab config", field="config", fix=fix)
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ConfigError(
            f"{path} starts with a byte-order mark (BOM), which TOML does not allow",
            field="config",
            fix="save it as UTF-8 without BOM (in most editors: encoding 'UTF-8', not 'UTF-8 with BOM')",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x})", field="config", fix=fix
        ) from None


@lru_cache(maxsize=1)
def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(LabConfig))


@lru_cache(maxsize=1)
def bool_fields() -> tuple[str, ...]:
    """The on/off fields, from their type: they take `--x/--no-x` flags and 'yes'/'off' text."""
    hints = get_type_hints(LabConfig)
    return tuple(name for name in field_names() if hints[name] is bool)


# ----- coercion of text values (CLI flags, environment) -----

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _coerce(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if name in bool_fields():
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
    elif name == "readers":
        try:
            return int(text)
        except ValueError:
            pass
    elif name == "ssh_cidr" and text.lower() in ("", "none", "off"):
        return None
    return text


# ----- validation, one small function per field -----


def _validated(config: LabConfig) -> dict[str, Any]:
    """Check every field; return the normalised values. Raises ConfigError on the first bad one."""
    values = {
        "lab": _check_name_part("lab", config.lab),
        "learner": _check_name_part("learner", config.learner),
        "region": check_region(config.region),
        "backend": _check_backend(config.backend),
        "vpc": _check_vpc(config.vpc),
        "vpc_cidr": _check_vpc_cidr(config.vpc_cidr),
        "engine": _check_engine(config.engine),
    }
    engine = ENGINES[values["engine"]]
    values |= {
        "engine_version": _check_engine_version(config.engine_version, engine),
        "db_instance_class": _check_db_instance_class(config.db_instance_class, engine),
        "readers": _check_readers(config.readers),
        "instance_type": _check_instance_type(config.instance_type),
        "key_pair": _check_bool("key_pair", config.key_pair),
        "deletion_protection": _check_bool("deletion_protection", config.deletion_protection),
    }
    values["ssh_cidr"] = _check_ssh_cidr(config.ssh_cidr, values["vpc_cidr"])
    _check_name_lengths(values["lab"], values["learner"], values["readers"])
    return values


def _check_name_part(field: str, value: Any) -> str:
    text = require_str(field, value, "alice")
    if not NAME_PART_PATTERN.match(text):
        suggestion = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")
        if suggestion and not suggestion[0].isalpha():
            suggestion = "x" + suggestion
        raise ConfigError(
            f"{text!r} cannot be part of an RDS identifier: use lower-case letters, digits and single hyphens, "
            "starting with a letter and not ending with a hyphen",
            field=field,
            fix=f"use e.g. {suggestion or 'learner1'!r}",
        )
    return text


def _check_backend(value: Any) -> str:
    from labkit.aws.backend import BACKENDS  # start-up time: boto3; `labkit --help` reads this module

    text = require_str("backend", value, "sandbox").lower()
    if text not in BACKENDS:
        raise ConfigError(
            f"unknown backend {text!r}",
            field="backend",
            fix="use 'sandbox' (the default, local and free) or 'aws' (your real account, costs money)",
        )
    return text


def _check_vpc(value: Any) -> str:
    text = require_str("vpc", value, "create")
    if text in ("create", "default") or VPC_ID_PATTERN.match(text):
        return text
    raise ConfigError(
        f"{text!r} is neither 'create', 'default' nor a VPC id",
        field="vpc",
        fix="use 'create' (a new VPC for the lab), 'default' (the region's default VPC) or an id like vpc-0abc12345def67890",
    )


def _check_vpc_cidr(value: Any) -> str:
    text = require_str("vpc_cidr", value, "10.42.0.0/16")
    try:
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        hint = ""
        try:
            hint = f"; did you mean {ipaddress.IPv4Network(text, strict=False)}?"
        except ValueError:
            pass
        raise ConfigError(
            f"{text!r} is not an IPv4 network ({exc}){hint}", field="vpc_cidr", fix="use e.g. 10.42.0.0/16"
        ) from None
    low, high = VPC_PREFIX_RANGE
    if not low <= network.prefixlen <= high:
        raise ConfigError(
            f"{network} has a /{network.prefixlen} prefix; the lab needs /{low} to /{high}",
            field="vpc_cidr",
            fix="use a block such as 10.42.0.0/16 (AWS allows /16 to /28; the lab splits it into four subnets)",
        )
    if not any(network.subnet_of(private) for private in PRIVATE_RANGES):
        raise ConfigError(
            f"{network} is not inside a private range, so it would shadow real internet addresses",
            field="vpc_cidr",
            fix="use a block inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, e.g. 10.42.0.0/16",
        )
    return str(network)


def _check_engine(value: Any) -> str:
    text = require_str("engine", value, DEFAULT_ENGINE).lower()
    if text not in ENGINES:
        raise ConfigError(
            f"labkit has no Aurora engine {text!r}{suggest(text, tuple(ENGINES))}",
            field="engine",
            fix=f"use {_ENGINE_CHOICES} (the default is {DEFAULT_ENGINE})",
        )
    return text


def _check_engine_version(value: Any, engine: AuroraEngine) -> str:
    text = require_str("engine_version", value, "default")
    if text.lower() in ENGINE_VERSION_WORDS:
        return text.lower()
    versions = engine.versions
    if not versions.accepts(text):
        other = next((e for e in ENGINES.values() if e is not engine and e.versions.accepts(text)), None)
        whose = f"; it is an {other.display_name} version (engine = {other.name!r})" if other else ""
        raise ConfigError(
            f"{text!r} is not an {versions.label} ({versions.compatibility}) version{whose}",
            field="engine_version",
            fix=f"use 'default' (the region's default), 'lts', or a version like {versions.example} ({versions.older})",
        )
    return text


def _check_db_instance_class(value: Any, engine: AuroraEngine) -> str:
    text = require_str("db_instance_class", value, "db.t4g.medium")
    if text not in engine.instance_classes:
        raise ConfigError(
            f"{engine.display_name} does not offer {text!r}{suggest(text, engine.instance_classes)}",
            field="db_instance_class",
            fix=f"use db.t4g.medium (the cheapest, default) or another {engine.display_name} class such as db.r6g.large",
        )
    return text


def _check_readers(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be a whole number, got {value!r}", field="readers", fix="use e.g. readers = 1")
    if not 0 <= value <= MAX_READERS:
        raise ConfigError(
            f"{value} readers is out of range",
            field="readers",
            fix=f"use 0 to {MAX_READERS} (Aurora's replica limit)",
        )
    return value


def _check_instance_type(value: Any) -> str:
    text = require_str("instance_type", value, "t3.micro")
    if text not in known_instance_types():
        raise ConfigError(
            f"{text!r} is not an EC2 instance type{suggest(text, known_instance_types())}",
            field="instance_type",
            fix="use e.g. t3.micro (the default; whether it is free-tier eligible depends on your account and plan)",
        )
    return text


def _check_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}", field=field, fix=f"use {field} = true or false")
    return value


def _check_ssh_cidr(value: Any, vpc_cidr: str) -> str | None:
    if value is None:
        return None
    text = require_str("ssh_cidr", value, "203.0.113.7/32")
    if not text:
        return None
    fix = "give your own public IP as a single /32 (e.g. from https://checkip.amazonaws.com), or leave it unset"
    try:
        network = ipaddress.IPv4Network(text if "/" in text else f"{text}/32", strict=True)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not an IPv4 address or /32 ({exc})", field="ssh_cidr", fix=fix) from None
    if network.prefixlen == 0:
        raise ConfigError(f"{text} would open SSH to the whole internet", field="ssh_cidr", fix=fix)
    if network.prefixlen != 32:
        raise ConfigError(
            f"{text} allows {network.num_addresses} addresses; SSH is opened to one only",
            field="ssh_cidr",
            fix=fix,
        )
    if network.overlaps(ipaddress.IPv4Network(vpc_cidr)):
        raise ConfigError(f"{text} is inside the lab's own VPC ({vpc_cidr})", field="ssh_cidr", fix=fix)
    if not _is_public(network.network_address):
        raise ConfigError(
            f"{text} is not a public address, so it can never reach the instance", field="ssh_cidr", fix=fix
        )
    return str(network)


def _is_public(address: ipaddress.IPv4Address) -> bool:
    """Public enough to be a learner's source address (documentation ranges allowed, for examples and tests)."""
    if any(address in private for private in PRIVATE_RANGES):
        return False
    if address.is_loopback or address.is_unspecified or address.is_multicast or address.is_link_local:
        return False
    return address.is_global or address.is_private  # is_private also covers the documentation ranges


def _check_name_lengths(lab: str, learner: str, readers: int) -> None:
    limits = dict(NAME_LIMITS)
    if readers:
        limits["RDS instance identifier"] = (db_instance_node(readers + 1), 63)
    for what, (node, limit) in limits.items():
        name = resource_name(lab, learner, node)
        if len(name) > limit:
            field = "learner" if len(learner) >= len(lab) else "lab"
            raise ConfigError(
                f"the {what} {name!r} would be {len(name)} characters; AWS allows {limit}",
                field=field,
                fix=f"shorten lab or learner by {len(name) - limit} characters or more",
            )


def lab_and_backend(config: LabConfig | None = None, backend: Backend | None = None) -> tuple[LabConfig, Backend]:
    """The given config (else the saved lab config) and the given backend (else the one the config names)."""
    config = config if config is not None else LabConfig.load()
    return config, backend or config.make_backend()
