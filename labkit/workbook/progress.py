"""Evidence of passed checks, kept in the learner's labkit home and signed so that editing it is detected.

Each passed exercise check calls `record()`, which appends one line to `LABKIT_HOME/progress.jsonl`: what was
checked, when (UTC), against which resources (their ids), and the lab, learner, backend and region. The line
carries an HMAC-SHA256 over its canonical JSON, made with a key generated once per home (`progress.key`, 32
random bytes, 0600 in the 0700 home). `read_evidence()` returns every line with a verdict: `ok`, `tampered`
(the text is not what labkit wrote: a byte changed, a field edited, the line reformatted), `unsigned` (no
signature: a record added by hand), `wrong key` (signed with another key: copied from another home, or the
home's key was replaced since), `no key` (the key file is gone) or `unreadable` (not a JSON record).

What the signature proves, and what it does not:
- It detects editing: a learner (or a stray editor, or a sync tool) who changes, adds or re-keys a record
  without the key produces a record that fails verification, and the instructor's table flags it.
- It does not prove that a check passed. The key lives in the learner's own home, readable by the learner's
  own account (it must be: the learner's kernel signs with it), so a learner who reads the key, or simply calls
  `record()` from a cell, can write a record that verifies. A key the learner cannot read does not help while
  the learner's own process signs: whatever the check can use, the learner's code can use. An instructor-held
  copy of the key (written when the learner's account is made) would add only the detection of a replaced key.
- What holds up is the live state: each record names the resources it was checked against, so an instructor
  who needs assurance re-reads them (`labkit class status` lists every learner's resources by their tags; on
  AWS the learner cannot tag or create resources under another learner's name). Treat the evidence as a
  progress log a learner cannot quietly edit, not as an exam a learner cannot cheat.

A failed write (a full disk, a home made read-only) never loses earlier records (the file is replaced whole,
atomically, from a complete copy) and never fails the check: `record()` prints one line saying the evidence was
not saved, and returns.

On the lab too: `record()` also tags the learner's app security group with `labkit:progress:<exercise>` = the
time of the first pass, so an instructor collects progress from the account (`labkit class progress --tags`)
without reaching learners' machines. The learner policy allows exactly that tag on the learner's own groups
(`labkit/data/policies/learner-network.json`, ProgressTagsOnOwnGroups). A tag is not signed: it proves that the learner's own
identity wrote it (CloudTrail says when), which is as much as the file proves; it goes with the lab at cleanup.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from labkit.aws.tags import NODE_SG_APP, ec2_filters, tag_dict
from labkit.errors import ConfigError, LabkitError
from labkit.home import labkit_home, private_dir
from labkit.locks import exclusive

if TYPE_CHECKING:
    from labkit.aws.backend import Backend
    from labkit.config import LabConfig

PROGRESS_FILE = "progress.jsonl"
KEY_FILE = "progress.key"
LOCK_FILE = "progress.lock"
FORMAT_VERSION = 1
KEY_BYTES = 32
MAX_TEXT = 200  # a notebook name, a one-line description of what was checked, a resource id
# Exercise ids end up in a tag key (`labkit:progress:<id>`, at most 128 characters; EC2 allows letters, digits and
# `_ . : / = + - @` there) and in CSV column names: keep them short and plain.
EXERCISE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", re.ASCII)
TAG_PROGRESS = "labkit:progress:"  # + exercise id; the value is the UTC time of the first pass
TAG_ANCHOR = NODE_SG_APP  # the resource that carries the tags: the learner's own from 01 until cleanup

OK, TAMPERED, UNSIGNED, WRONG_KEY, NO_KEY, UNREADABLE = ("ok", "tampered", "unsigned", "wrong key", "no key",
                                                         "unreadable")  # fmt: skip
VERDICTS = (OK, TAMPERED, UNSIGNED, WRONG_KEY, NO_KEY, UNREADABLE)
SIGNED_FIELDS = ("v", "exercise", "notebook", "checked", "at", "lab", "learner", "backend", "region", "resources",
                 "key")  # fmt: skip


# ----- the key -----


def key_id(key: bytes) -> str:
    """A short public name of a key (its SHA-256, 12 hex digits): says which key signed, reveals nothing of it."""
    return hashlib.sha256(key).hexdigest()[:12]


def _read_key(home: Path) -> bytes | None:
    try:
        text = (home / KEY_FILE).read_text().strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError):
        return None
    return key if len(key) == KEY_BYTES else None


def home_key(home: Path) -> bytes:
    """The home's signing key, made on first use (0600, created exclusively: two first records agree on one key)."""
    key = _read_key(home)
    if key is not None:
        return key
    path = home / KEY_FILE
    fresh = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:  # made meanwhile by another process, or unreadable: use it or say so
        key = _read_key(home)
        if key is None:
            raise LabkitError(
                f"the progress key {path} is not readable or not a key",
                field=KEY_FILE,
                fix=f"move {path} aside (records signed with it will then show as 'wrong key') and run the check again",
            ) from None
        return key
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, fresh.hex().encode() + b"\n")
        os.fsync(fd)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)  # never leave a half-written key that would refuse every later record
        raise
    os.close(fd)
    return fresh


# ----- records -----


def canonical(record: Mapping[str, Any]) -> str:
    """The one text of a record: sorted keys, no spaces, ASCII. The signature covers it and the file holds it."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sign(record: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) over the canonical text of the signed fields."""
    body = {name: record[name] for name in SIGNED_FIELDS if name in record}
    return hmac.new(key, canonical(body).encode(), hashlib.sha256).hexdigest()


def _text(value: Any, field_name: str) -> str:
    """One line of text for a record: white space runs become one space, control characters go, and past MAX_TEXT
    it is cut with an ellipsis (a check may quote what the learner typed: that must not fail a passed check)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{value!r} is not a text", field=field_name, fix="pass a short non-empty text, e.g. 'sg-0123'"
        )
    line = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    return line if len(line) <= MAX_TEXT else line[: MAX_TEXT - 1] + "…"


def exercise_id(value: Any) -> str:
    """An exercise id as the evidence, the tags and the CSV columns need it, or ConfigError."""
    if not isinstance(value, str) or not EXERCISE_PATTERN.match(value):
        raise ConfigError(
            f"{value!r} is not an exercise id",
            field="exercise",
            fix="use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, e.g. '01-app-to-db-rule'",
        )
    return value


def _resources(resources: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(resources, Mapping):
        raise ConfigError(
            f"resources must map a role to a resource id, not {type(resources).__name__}",
            field="resources",
            fix="pass e.g. {'security_group': 'sg-0123', 'rule': 'sgr-0456'}",
        )
    return {_text(str(name), "resources"): _text(str(value), "resources")
            for name, value in resources.items() if str(value).strip()}  # fmt: skip


def new_record(
    config: LabConfig, exercise: str, *, notebook: str, checked: str, resources: Mapping[str, str],
    at: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A record's fields, validated (ConfigError names the bad one), not yet signed; `at` defaults to now (UTC)."""
    when = (at or datetime.now(UTC)).astimezone(UTC)
    return {
        "v": FORMAT_VERSION,
        "exercise": exercise_id(exercise),
        "notebook": _text(notebook, "notebook"),
        "checked": _text(checked, "checked"),
        "at": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "lab": config.lab,
        "learner": config.learner,
        "backend": config.backend,
        "region": config.region,
        "resources": _resources(resources),
    }


def signed(record: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """The record with the id of the key that signs it and its signature."""
    result = {**record, "key": key_id(key)}
    result["sig"] = sign(result, key)
    return result


def _replace_with(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`: a reader (or a
    crash) sees the old file or the new one, never half of either; a failure leaves the old file as it was."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def append(home: Path, record: Mapping[str, Any]) -> Path:
    """Add one record to the home's progress file (under a lock, replacing the file whole). Raises OSError."""
    path = home / PROGRESS_FILE
    with exclusive(home / LOCK_FILE):
        try:
            old = path.read_bytes()
        except FileNotFoundError:
            old = b""
        if old and not old.endswith(b"\n"):
            old += b"\n"  # a hand-edited file without its last newline: keep that line whole, flagged by the reader
        _replace_with(path, old + canonical(record).encode() + b"\n")
    return path


def record(
    config: LabConfig,
    exercise: str,
    *,
    notebook: str,
    checked: str,
    resources: Mapping[str, str],
    home: Path | None = None,
    backend: Backend | None = None,
) -> None:
    """Keep signed evidence that `exercise` passed its check, in the learner's labkit home (or `home`), and tag
    the learner's lab with it (through `backend`, default the config's).

    `checked` says in a line what the check verified; `resources` maps a role to the id of each resource it read
    (e.g. {'security_group': 'sg-0123', 'rule': 'sgr-0456'}). Bad arguments raise ConfigError (a bug in the
    check), before anything is written; a failed write or tag prints one line and returns, so the learner's
    passed check still passes.
    """
    entry = new_record(config, exercise, notebook=notebook, checked=checked, resources=resources)
    where = Path(home) if home is not None else None
    try:
        where = private_dir(where) if where is not None else labkit_home()  # a home is 0700, whoever makes it
        append(where, signed(entry, home_key(where)))
    except (OSError, LabkitError) as exc:
        _say_not_saved(where, _reason(exc))
    try:
        tag_lab(config, exercise, entry["at"], backend)
    except (LabkitError, ClientError, BotoCoreError) as exc:  # the check passed: a tag must not say otherwise
        print(
            f"progress: your check passed, but the tag on your lab was not written ({_reason(exc)}); the "
            "instructor's `labkit class progress --tags` will not show it until a check passes again.",
            file=sys.stderr,
        )


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "message", None) or str(exc)


def _say_not_saved(where: Path | None, reason: str) -> None:
    print(
        f"progress: your check passed, but its evidence was not saved in {where or 'the labkit home'} ({reason}); "
        "earlier evidence is untouched. Free some space or fix the folder's permissions, then run the check again.",
        file=sys.stderr,
    )


# ----- the tag on the lab -----


def progress_tags(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """{exercise id: UTC time of its first pass} from a resource's tags."""
    return {key[len(TAG_PROGRESS) :]: value for key, value in tag_dict(tags).items() if key.startswith(TAG_PROGRESS)}


def tag_lab(config: LabConfig, exercise: str, at: str, backend: Backend | None = None) -> bool:
    """Tag the learner's app security group `labkit:progress:<exercise>` = `at`, unless a pass is already there
    (the first pass counts). False when the lab has no such group yet (before 01 builds it): nothing to tag."""
    chosen = backend or config.make_backend()
    ec2 = chosen.client("ec2")
    groups = ec2.describe_security_groups(Filters=ec2_filters(config.lab, config.learner, TAG_ANCHOR))
    found = groups["SecurityGroups"]
    if not found:
        return False
    group = found[0]
    if exercise_id(exercise) in progress_tags(group.get("Tags")):
        return True
    ec2.create_tags(Resources=[group["GroupId"]], Tags=[{"Key": TAG_PROGRESS + exercise, "Value": at}])
    return True


# ----- reading -----


@dataclass(frozen=True)
class Evidence:
    """One line of a progress file, with the reader's verdict. `valid` is true only for an intact, signed record."""

    line: int
    verdict: str
    exercise: str = ""
    notebook: str = ""
    checked: str = ""
    at: str = ""
    lab: str = ""
    learner: str = ""
    backend: str = ""
    region: str = ""
    resources: dict[str, str] = field(default_factory=dict)
    key: str = ""

    @property
    def valid(self) -> bool:
        return self.verdict == OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line, "verdict": self.verdict, "valid": self.valid, "exercise": self.exercise,
            "notebook": self.notebook, "checked": self.checked, "at": self.at, "lab": self.lab,
            "learner": self.learner, "backend": self.backend, "region": self.region,
            "resources": dict(self.resources), "key": self.key,
        }  # fmt: skip


def verdict(raw: str, data: Any, key: bytes | None) -> str:
    """Why a line can or cannot be trusted (see the module docstring for each verdict)."""
    if not isinstance(data, dict) or not isinstance(data.get("exercise"), str):
        return UNREADABLE
    signature = data.get("sig")
    if not isinstance(signature, str) or not signature:
        return UNSIGNED
    if key is None:
        return NO_KEY
    if data.get("key") != key_id(key):
        return WRONG_KEY
    if (
        not hmac.compare_digest(signature, sign(data, key))
        or raw != canonical(data)
        or set(data) - {*SIGNED_FIELDS, "sig"}
    ):
        return TAMPERED  # an edited value, an added field, or the same values written differently
    return OK


def _field(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    return value if isinstance(value, str) else str(value)


def parse_line(number: int, raw: str, key: bytes | None) -> Evidence:
    try:
        data = json.loads(raw)
    except ValueError:
        return Evidence(number, UNREADABLE)
    found = verdict(raw, data, key)
    if found == UNREADABLE:
        return Evidence(number, UNREADABLE)
    resources = data.get("resources")
    return Evidence(
        number, found, *(_field(data, name) for name in ("exercise", "notebook", "checked", "at", "lab", "learner",
                                                          "backend", "region")),
        resources={str(k): str(v) for k, v in resources.items()} if isinstance(resources, dict) else {},
        key=_field(data, "key"),
    )  # fmt: skip


def read_evidence(home: Path | None = None) -> list[Evidence]:
    """Every record in a home's progress file (the learner's home by default), each with its verdict; [] when
    there is none. Reading never creates the key or the file."""
    where = Path(home) if home is not None else labkit_home(create=False)
    path = where / PROGRESS_FILE
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LabkitError(
            f"cannot read the progress file {path} ({exc.strerror or exc})",
            field="homes",
            fix="run as the learner who owns that home, or as an instructor who can read it",
        ) from None
    key = _read_key(where)
    return [parse_line(n, raw, key) for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
