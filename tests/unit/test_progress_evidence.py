"""Evidence of passed checks (labkit.workbook.progress): signed lines in the learner's home, every edit detected,
a failed write that loses nothing and does not fail the check, and the tag on the learner's own lab."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.lab.apply import apply
from labkit.workbook import progress
from labkit.workbook.progress import (
    KEY_FILE,
    PROGRESS_FILE,
    TAG_PROGRESS,
    progress_tags,
    read_evidence,
    record,
)

ADA = LabConfig(lab="demo", learner="ada")
RULE = {"security_group": "sg-0123456789abcdef0", "rule": "sgr-0aaa"}


def passed(home: Path, exercise: str = "01-app-to-db-rule", config: LabConfig = ADA, backend=None) -> None:
    record(
        config, exercise, notebook="01_network", checked="the app group reaches the database group on 3306",
        resources=RULE, home=home, backend=backend,
    )  # fmt: skip


@pytest.fixture
def home(tmp_path, moto_backend):
    """A learner's home with two passed checks (no lab in the account: nothing to tag)."""
    where = tmp_path / "ada-home"
    where.mkdir(mode=0o700)
    passed(where, "01-app-to-db-rule", backend=moto_backend)
    passed(where, "01-lint-clean", backend=moto_backend)
    return where


def lines(home: Path) -> list[str]:
    return (home / PROGRESS_FILE).read_text().splitlines()


def verdicts(home: Path) -> list[str]:
    return [e.verdict for e in read_evidence(home)]


def test_a_passed_check_leaves_a_signed_private_record(home):
    found = read_evidence(home)
    assert [(e.exercise, e.valid) for e in found] == [("01-app-to-db-rule", True), ("01-lint-clean", True)]
    first = found[0]
    assert (first.lab, first.learner, first.backend, first.region) == ("demo", "ada", ADA.backend, "us-east-1")
    assert first.resources == RULE and first.notebook == "01_network" and first.at.endswith("Z")
    for name in (PROGRESS_FILE, KEY_FILE):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    key = (home / KEY_FILE).read_text().strip()
    assert key not in (home / PROGRESS_FILE).read_text(), "the key never lands in the evidence"


def test_one_byte_changed_is_detected(home):
    text = (home / PROGRESS_FILE).read_bytes()
    at = text.index(b"sgr-0aaa") + 7
    (home / PROGRESS_FILE).write_bytes(text[:at] + b"b" + text[at + 1 :])  # sgr-0aaa -> sgr-0aab
    assert verdicts(home) == ["tampered", "ok"]


def test_a_reformatted_or_extended_record_is_detected(home):
    first, second = lines(home)
    data = json.loads(first)
    (home / PROGRESS_FILE).write_text(json.dumps(data, indent=1).replace("\n", "") + "\n" + second + "\n")
    assert verdicts(home) == ["tampered", "ok"], "same values, other text: not what labkit wrote"
    data["grade"] = "A"
    (home / PROGRESS_FILE).write_text(progress.canonical(data) + "\n")
    assert verdicts(home) == ["tampered"], "a field the signature does not cover"


def test_a_record_added_by_hand_is_detected(home):
    forged = json.loads(lines(home)[0]) | {"exercise": "05-failover"}
    unsigned = {k: v for k, v in forged.items() if k != "sig"}
    with (home / PROGRESS_FILE).open("a") as out:
        out.write(progress.canonical(unsigned) + "\n")
        out.write(progress.canonical(forged) + "\n")  # an old signature on new values
        out.write("05-failover passed\n")
    assert verdicts(home) == ["ok", "ok", "unsigned", "tampered", "unreadable"]
    assert not any(e.valid for e in read_evidence(home) if e.exercise == "05-failover")


def test_a_replaced_key_is_detected_and_a_missing_one_named(home, moto_backend):
    (home / KEY_FILE).write_text(os.urandom(32).hex() + "\n")
    assert verdicts(home) == ["wrong key", "wrong key"]
    passed(home, "02-endpoints", backend=moto_backend)
    assert verdicts(home) == ["wrong key", "wrong key", "ok"], "records signed after the change verify"
    (home / KEY_FILE).unlink()
    assert verdicts(home) == ["no key"] * 3
    assert not (home / KEY_FILE).exists(), "reading never makes a key"


def test_records_copied_from_another_home_show_the_wrong_key(home, tmp_path, moto_backend):
    other = tmp_path / "grace-home"
    passed(other, config=LabConfig(lab="demo", learner="grace"), backend=moto_backend)
    with (other / PROGRESS_FILE).open("a") as out:
        out.write("\n".join(lines(home)) + "\n")
    assert verdicts(other) == ["ok", "wrong key", "wrong key"]


def test_bad_arguments_raise_before_anything_is_written(tmp_path, moto_backend):
    for bad in ({"exercise": "01 app rule"}, {"exercise": ""}, {"notebook": " "}, {"checked": None},
                {"resources": ["sg-1"]}):  # fmt: skip
        arguments = {"exercise": "01-rule", "notebook": "01_network", "checked": "x", "resources": RULE} | bad
        with pytest.raises(ConfigError) as caught:
            record(ADA, arguments.pop("exercise"), home=tmp_path, backend=moto_backend, **arguments)
        assert caught.value.field in bad and caught.value.fix
    assert not (tmp_path / PROGRESS_FILE).exists() and not (tmp_path / KEY_FILE).exists()


def test_what_a_learner_typed_never_fails_a_passed_check(tmp_path, moto_backend):
    """A check may quote the learner's own text (a rule description): it is kept on one line, cut if long."""
    typed = "my rule\n\tfor the app\x00" + "!" * 500
    record(ADA, "01-rule", notebook="01_network", checked=f"rule described {typed}", resources={"rule": "sgr-1", "note": ""},
           home=tmp_path, backend=moto_backend)  # fmt: skip
    (found,) = read_evidence(tmp_path)
    assert found.valid and found.checked.startswith("rule described my rule for the app !!!")
    assert len(found.checked) == progress.MAX_TEXT and found.checked.endswith("…")
    assert found.resources == {"rule": "sgr-1"}


FILL_THE_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from labkit.config import LabConfig
    from labkit.workbook.progress import record
    home = Path(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as a full disk fails
    limit = (home / "progress.jsonl").stat().st_size + 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    record(LabConfig(lab="demo", learner="ada"), "02-endpoints", notebook="02_database", checked="endpoints",
           resources={"cluster": "demo-ada-cluster"}, home=home)
    print("the check went on")
    """
)


def test_a_failed_write_keeps_the_earlier_records_and_does_not_fail_the_check(home):
    """A real failed write: the kernel refuses bytes past RLIMIT_FSIZE (EFBIG) in a child process."""
    before = (home / PROGRESS_FILE).read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", FILL_THE_DISK, str(home)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "LABKIT_HOME": str(home)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the check went on" in done.stdout
    assert "evidence was not saved" in done.stderr and "earlier evidence is untouched" in done.stderr
    assert "Traceback" not in done.stderr
    assert (home / PROGRESS_FILE).read_bytes() == before
    assert verdicts(home) == ["ok", "ok"]
    assert [p.name for p in home.iterdir() if p.name.startswith(".")] == [], "no temporary file left behind"


RECORD_MANY = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from labkit.config import LabConfig
    from labkit.workbook import progress
    progress.tag_lab = lambda *args: False  # this test is about the file: no account to tag
    home, learner = Path(sys.argv[1]), sys.argv[2]
    for n in range(10):
        progress.record(LabConfig(lab="demo", learner=learner), f"ex-{n}", notebook="01_network", checked="x",
                        resources={}, home=home)
    """
)


def test_two_processes_recording_at_once_lose_nothing(tmp_path):
    workers = [
        subprocess.Popen([sys.executable, "-c", RECORD_MANY, str(tmp_path), name], stderr=subprocess.PIPE, text=True)
        for name in ("ada", "bob")
    ]
    for worker in workers:
        assert worker.wait(timeout=60) == 0, worker.stderr.read()
    found = read_evidence(tmp_path)
    assert len(found) == 20 and all(e.valid for e in found), "one key for both, every record whole"
    assert sorted({e.learner for e in found}) == ["ada", "bob"]


def test_the_check_tags_the_learners_own_lab_once(strict_backend, tmp_path, capsys):
    """The tag the instructor collects without the learner's machine: on the app group, first pass kept."""
    config = LabConfig(learner="ada", readers=0)
    apply(config, strict_backend, only="network", stream=io.StringIO())
    passed(tmp_path, "01-app-to-db-rule", config=config, backend=strict_backend)
    ec2 = strict_backend.client("ec2")

    def tags() -> dict[str, str]:
        groups = ec2.describe_security_groups(Filters=[{"Name": "tag:labkit:node", "Values": ["sg-app"]}])
        return progress_tags(groups["SecurityGroups"][0]["Tags"])

    first = tags()
    assert list(first) == ["01-app-to-db-rule"] and first["01-app-to-db-rule"] == read_evidence(tmp_path)[0].at
    passed(tmp_path, "01-app-to-db-rule", config=config, backend=strict_backend)
    assert tags() == first, "the first pass counts"
    assert capsys.readouterr().err == ""
    db_group = ec2.describe_security_groups(Filters=[{"Name": "tag:labkit:node", "Values": ["sg-db"]}])
    assert not progress_tags(db_group["SecurityGroups"][0]["Tags"])
    assert all(not t["Key"].startswith(TAG_PROGRESS) for t in db_group["SecurityGroups"][0]["Tags"])


def test_an_unreachable_account_costs_the_tag_not_the_check(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "no-sandbox-home"))
    passed(tmp_path, config=LabConfig(lab="demo", learner="ada", backend="sandbox"))  # no sandbox runs here
    err = capsys.readouterr().err
    assert "the tag on your lab was not written" in err and "sandbox" in err
    assert verdicts(tmp_path) == ["ok"]
