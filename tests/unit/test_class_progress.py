"""`labkit class progress` and labkit.class_progress(): evidence from several homes and from the labs' tags,
verified, told apart, exported as a CSV that parses back; bad input named with its flag and fix."""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import stat
from pathlib import Path

import pytest

from labkit.classroom import progress as class_progress_module
from labkit.classroom.progress import LONG_COLUMNS, WIDE_COLUMNS, class_progress
from labkit.cli import classroom as cli_class
from labkit.config import LabConfig
from labkit.errors import ConfigError
from labkit.lab.apply import apply
from labkit.workbook import progress
from labkit.workbook.progress import PROGRESS_FILE, record


@pytest.fixture(autouse=True)
def _exercises_of_these_tests(monkeypatch):
    """These tests name their own exercises (the columns come from the evidence); the workbook's declared list,
    once labkit.workbook.exercises exists, is the columns' order (tests/unit/test_exercises.py)."""
    monkeypatch.setattr(class_progress_module, "workbook_exercises", lambda: None)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="labkit")
    cli_class.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["class", *argv])
    return args.handler(args)


def passed(home: Path, learner: str, exercise: str, *, checked: str = "the live lab showed it", backend=None) -> None:
    record(LabConfig(lab="demo", learner=learner), exercise, notebook=exercise[:2] + "_notebook", checked=checked,
           resources={"security_group": f"sg-{learner}"}, home=home, backend=backend)  # fmt: skip


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """A class hub's layout: one home per learner account. ada passed two exercises, grace one, and grace's
    file also holds a record she edited (the second exercise, re-dated); linus has only his lab.toml so far."""
    monkeypatch.setattr(progress, "tag_lab", lambda *args: False)  # these tests read homes; tags have their own
    root = tmp_path / "home"
    for learner, exercises in (
        ("ada", ["01.db-ingress", "02.endpoints"]),
        ("grace", ["01.db-ingress", "02.endpoints"]),
    ):
        for exercise in exercises:
            passed(root / learner / ".labkit", learner, exercise)
    grace = root / "grace" / ".labkit" / PROGRESS_FILE
    first, second = grace.read_text().splitlines()
    grace.write_text(first + "\n" + second.replace('"at":"20', '"at":"19') + "\n")
    LabConfig(lab="demo", learner="linus").save(root / "linus" / ".labkit" / "lab.toml")
    return root


def test_two_homes_are_collected_verified_and_told_apart(homes):
    result = class_progress(str(homes / "*" / ".labkit"))
    assert result.exercises == ["01.db-ingress", "02.endpoints"]
    table = result.table.set_index("learner")
    assert table.loc["ada", "passed"] == "2/2" and table.loc["grace", "passed"] == "1/2"
    assert table.loc["grace", "02.endpoints"] == "", "an edited record is no pass"
    assert table.loc["grace", "flags"] == "1 tampered" and table.loc["ada", "flags"] == ""
    assert table.loc["ada", "source"] == str((homes / "ada" / ".labkit").resolve())
    assert table.loc["linus", "passed"] == "0/2", "a learner who passed nothing yet has a row"
    assert "1 record did not verify" in str(result)


def test_a_copied_home_is_flagged_in_both(homes, monkeypatch):
    """linus copies ada's whole home, key included: every record verifies, and the shared key gives it away."""
    shutil.copytree(homes / "ada" / ".labkit", homes / "linus" / ".labkit", dirs_exist_ok=True)
    result = class_progress([homes / "ada" / ".labkit", homes / "linus" / ".labkit"])
    rows = result.learners()
    assert [(p.learner, p.source.split("/")[-2], len(p.passes)) for p in rows] == [
        ("ada", "ada", 2), ("ada", "linus", 2), ("linus", "linus", 0)]  # fmt: skip
    assert all("same key as" in "; ".join(p.flags) for p in rows)
    assert not class_progress(homes / "ada" / ".labkit").learners()[0].flags, "one home alone: nothing to compare"


def test_the_gradebook_csv_has_the_documented_columns_and_parses_back(homes, tmp_path):
    result = class_progress(str(homes / "*" / ".labkit"))
    wide = result.write_csv(tmp_path / "grades.csv")
    assert stat.S_IMODE(wide.stat().st_mode) == 0o600
    with wide.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == [*WIDE_COLUMNS, "01.db-ingress", "02.endpoints"]
        rows = {row["learner"]: row for row in reader}
    assert rows["ada"] | {"source": ""} == {"learner": "ada", "lab": "demo", "source": "", "passed": "2",
                                           "exercises": "2", "flagged": "0", "01.db-ingress": "1", "02.endpoints": "1"}  # fmt: skip
    assert (rows["grace"]["passed"], rows["grace"]["flagged"], rows["grace"]["02.endpoints"]) == ("1", "1", "0")
    assert (rows["linus"]["passed"], rows["linus"]["01.db-ingress"]) == ("0", "0")
    long = result.write_csv(tmp_path / "records.csv", long=True)
    with long.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    assert list(records[0]) == LONG_COLUMNS and len(records) == 4
    assert sorted((r["learner"], r["exercise"], r["valid"], r["verdict"]) for r in records)[-1] == (
        "grace", "02.endpoints", "False", "tampered")  # fmt: skip


def test_a_spreadsheet_formula_in_evidence_stays_text(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "tag_lab", lambda *args: False)
    passed(tmp_path / "h", "ada", "01.db-ingress", checked='=HYPERLINK("http://evil.example","x")')
    target = class_progress(tmp_path / "h").write_csv(tmp_path / "records.csv", long=True)
    with target.open(newline="") as handle:
        assert next(csv.DictReader(handle))["checked"].startswith("'=HYPERLINK")


def test_the_workbooks_exercises_are_the_columns_once_declared(homes, monkeypatch):
    monkeypatch.setattr(
        class_progress_module, "workbook_exercises", lambda: ["01.db-ingress", "01.lint", "02.endpoints"]
    )
    result = class_progress(str(homes / "*" / ".labkit"))
    assert list(result.table.columns[4:7]) == ["01.db-ingress", "01.lint", "02.endpoints"]
    assert result.table.set_index("learner").loc["ada", "passed"] == "2/3"
    monkeypatch.setattr(class_progress_module, "workbook_exercises", lambda: ["01.db-ingress"])
    assert "does not declare (renamed?): 02.endpoints" in str(class_progress(str(homes / "*" / ".labkit")))


def test_the_cli_prints_json_and_writes_the_csv(homes, tmp_path, capsys):
    target = tmp_path / "out" / "grades.csv"
    target.parent.mkdir()
    assert run("progress", "--homes", str(homes / "ada" / ".labkit"), str(homes / "grace" / ".labkit"),
               "--csv", str(target), "--json") == 0  # fmt: skip
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert [(row["learner"], row["passed"], row["flags"]) for row in data["learners"]] == [
        ("ada", 2, []), ("grace", 1, ["1 tampered"])]  # fmt: skip
    assert sum(not r["valid"] for r in data["records"]) == 1
    assert f"wrote {target}" in captured.err
    assert target.read_text().splitlines()[0] == ",".join([*WIDE_COLUMNS, "01.db-ingress", "02.endpoints"])
    assert run("progress", "--homes", str(homes / "*" / ".labkit"), "--learner", "grace") == 0
    out = capsys.readouterr().out
    assert "grace" in out and "ada" not in out


@pytest.mark.parametrize(
    ("argv", "flag", "fix"),
    [
        (["--homes", "/no/such/home"], "--homes", "quoted glob"),
        (["--homes", "{tmp}"], "--homes", "/*/.labkit"),  # a folder that holds homes, not a home
        (["--homes", "{tmp}/nobody-*/.labkit"], "--homes", "quoted"),
        (["--csv", "{tmp}"], "--csv", "give a file name"),
        (["--csv", "{tmp}/missing/grades.csv"], "--csv", "mkdir -p"),
        (["--long"], "--long", "--csv FILE"),
        (["--learner", "Ada Lovelace"], "learner", "ada-lovelace"),
    ],
)
def test_bad_input_names_the_flag_and_the_fix(homes, tmp_path, capsys, argv, flag, fix):
    code = run("progress", *(a.replace("{tmp}", str(homes)) for a in argv))
    err = capsys.readouterr().err
    assert code == 2, err
    head, _, remedy = err.partition("\n  fix: ")
    assert head.startswith(f"error: {flag}: ") and fix in remedy, err
    assert "Traceback" not in err


def test_nothing_is_written_when_the_input_is_bad(homes, tmp_path):
    with pytest.raises(ConfigError):
        class_progress(["/no/such/home"])
    assert run("progress", "--homes", "/no/such/home", "--csv", str(tmp_path / "grades.csv")) == 2
    assert not (tmp_path / "grades.csv").exists()


def test_progress_from_the_tags_on_the_labs(strict_backend, tmp_path, monkeypatch, capsys):
    """On AWS: the checks tag each learner's own group; the instructor reads the account, no home needed."""
    for learner, cidr in (("ada", "10.42.0.0/16"), ("grace", "10.43.0.0/16"), ("linus", "10.44.0.0/16")):
        apply(LabConfig(lab="demo", learner=learner, readers=0, vpc_cidr=cidr), strict_backend, only="network",
              stream=io.StringIO())  # fmt: skip
    passed(tmp_path / "ada", "ada", "01.db-ingress", backend=strict_backend)
    passed(tmp_path / "ada", "ada", "02.endpoints", backend=strict_backend)
    passed(tmp_path / "grace", "grace", "01.db-ingress", backend=strict_backend)
    result = class_progress(tags=True, lab="demo", backends=[strict_backend])
    assert [(p.learner, p.source, sorted(p.passes)) for p in result.learners()] == [
        ("ada", "tags:us-east-1", ["01.db-ingress", "02.endpoints"]), ("grace", "tags:us-east-1", ["01.db-ingress"]),
        ("linus", "tags:us-east-1", [])]  # fmt: skip
    from_file = {e.exercise: e.at for e in progress.read_evidence(tmp_path / "ada")}
    assert result.learners()[0].passes == from_file, "the tag carries the time of the same first pass"
    assert result.sources == ["tags:us-east-1"]
    monkeypatch.setattr(cli_class, "backends_for", lambda backend, regions: [strict_backend])
    assert run("progress", "--tags", "--homes", str(tmp_path / "ada"), "--json") == 0
    sources = {(row["learner"], row["source"]) for row in json.loads(capsys.readouterr().out)["learners"]}
    assert sources == {("ada", "tags:us-east-1"), ("ada", str((tmp_path / "ada").resolve())),
                       ("grace", "tags:us-east-1"), ("linus", "tags:us-east-1")}  # fmt: skip


def test_a_home_of_another_account_says_to_run_as_one_that_can_read_it(homes, monkeypatch, capsys):
    """Homes are 0700: without root, the glob finds folders it cannot look into. (This suite runs as root, which
    reads everything, so the refusal the kernel would give is stood in for by os.access.)"""
    monkeypatch.setattr(class_progress_module.os, "access", lambda path, mode: not str(path).endswith("grace/.labkit"))
    assert run("progress", "--homes", str(homes / "*" / ".labkit")) == 2
    err = capsys.readouterr().err
    assert "--homes: cannot read" in err and "grace/.labkit" in err and "sudo" in err


def test_the_local_home_by_default(lab_home, monkeypatch, capsys):
    monkeypatch.setattr(progress, "tag_lab", lambda *args: False)
    assert run("progress") == 0
    assert f"no evidence yet: no check has passed in what was read ({lab_home.resolve()})" in capsys.readouterr().out
    passed(lab_home, "ada", "01.db-ingress")
    assert run("progress", "--json") == 0
    assert [row["passes"] for row in json.loads(capsys.readouterr().out)["learners"]] == [
        {"01.db-ingress": progress.read_evidence()[0].at}]  # fmt: skip
