"""Bad input a reliability probe found accepted in silence, or ending in a traceback or a hang (issue 27, item 4):
each is refused before any work, naming the flag and the fix."""

from __future__ import annotations

import argparse

import pytest
from support.cli_run import run_labkit as _run

from labkit.cli.options import output_prefix
from labkit.errors import ConfigError
from labkit.inputs import check_output_folder, split_names


@pytest.mark.parametrize(("names", "words"), [("a,a", "given more than once"), ("a,,b", "is empty"),
                                               ("a,b,", "is empty"), (",", "no learner names")])  # fmt: skip
def test_a_name_list_with_a_repeat_or_an_empty_item_is_refused(names, words):
    with pytest.raises(ConfigError) as refused:
        split_names(names)
    assert words in refused.value.message and refused.value.field == "--names" and refused.value.fix


@pytest.mark.parametrize("verb", ["create", "delete"])
@pytest.mark.parametrize("names", ["ada,ada", "ada,,grace"])
def test_class_learners_refuses_the_list_before_any_backend(lab_home, capsys, verb, names):
    code, text = _run(capsys, "class", "learners", verb, "--lab", "demo", "--names", names)
    assert code == 2 and "--names" in text and "fix:" in text and "Traceback" not in text, text
    assert "sandbox is not running" not in text  # refused before a backend was asked for


@pytest.mark.parametrize("names", ["ada,ada", "ada,,grace"])
def test_hub_learners_refuses_the_same_lists(lab_home, capsys, names):
    code, text = _run(capsys, "class", "hub-learners", "create", "--names", names)
    assert code == 2 and "--names" in text and "fix:" in text, text


@pytest.mark.parametrize("folder", ["/proc/labkit-out", "/sys/kernel/labkit", "/dev/labkit", "/proc/self/fd"])
def test_a_folder_inside_a_kernel_pseudo_filesystem_is_refused(folder):
    with pytest.raises(ConfigError) as refused:
        check_output_folder(folder, field="--out")
    assert "kernel pseudo-filesystem" in refused.value.message and refused.value.field == "--out"


def test_a_real_folder_and_dev_shm_are_accepted(tmp_path):
    assert check_output_folder(tmp_path / "new", field="--out") == tmp_path / "new"
    assert check_output_folder("/dev/shm/labkit-out", field="--out").name == "labkit-out"


@pytest.mark.parametrize(
    "argv",
    [
        ["class", "learners", "create", "--lab", "demo", "--names", "ada", "--dir", "/proc/labkit"],
        ["class", "learners", "delete", "--lab", "demo", "--dir", "/sys/labkit"],
        ["class", "hub-learners", "create", "--names", "ada", "--dir", "/proc/labkit"],
        ["class", "reset", "--report-dir", "/proc/labkit"],
        ["run-notebooks", "--out", "/proc/labkit-out", "--only", "00_setup"],
        ["release-notebooks", "--out", "/proc/labkit-out"],
    ],
    ids=["learners-create", "learners-delete", "hub-learners", "class-reset", "run-notebooks", "release-notebooks"],
)
def test_commands_refuse_an_output_folder_in_proc_before_any_work(lab_home, capsys, argv):
    code, text = _run(capsys, *argv)
    assert code == 2 and "kernel pseudo-filesystem" in text and "fix:" in text and "Traceback" not in text, text


def test_bench_save_naming_a_folder_is_refused_with_the_path_to_use(tmp_path):
    with pytest.raises(argparse.ArgumentTypeError, match=r"is a folder.*run1"):
        output_prefix(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="kernel pseudo-filesystem"):
        output_prefix("/proc/self/run1")
    assert output_prefix(str(tmp_path / "run1")) == str(tmp_path / "run1")


def test_a_bench_result_is_not_saved_beside_a_folder(tmp_path):
    from labkit.bench.runner import BenchResult

    result = BenchResult.__new__(BenchResult)  # save() refuses before it reads anything of the result
    with pytest.raises(ConfigError, match="is a folder"):
        result.save(tmp_path)
    assert not (tmp_path.parent / f"{tmp_path.name}.csv").exists()


def test_bench_count_beyond_what_a_run_measures_is_refused_at_once(lab_home, capsys):
    code, text = _run(capsys, "bench", "--count", "99999999999999")
    assert code == 2 and "count" in text and "--duration" in text and "Traceback" not in text, text


@pytest.mark.parametrize(("parts", "words"), [(["h" * 300], "folder name of 300 bytes"),
                                              (["h" * 150, "i" * 150], "labkit allows 250")])  # fmt: skip
def test_a_labkit_home_past_the_file_systems_limits_is_refused_with_the_limit(
    tmp_path, monkeypatch, capsys, parts, words
):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path.joinpath(*parts)))
    for argv in (["plan"], ["sandbox", "up"], ["sandbox", "status"]):
        code, text = _run(capsys, *argv)
        assert code == 2 and "LABKIT_HOME" in text and words in text and "fix:" in text, text
        assert "Traceback" not in text


@pytest.mark.parametrize(("version", "status"), [("8.0.mysql_aurora.3.99.0", "not offered"),
                                                 ("8.0.mysql_aurora.3.05.2", "deprecated")])  # fmt: skip
def test_plan_refuses_a_pinned_version_the_engines_catalog_does_not_offer(moto_backend, version, status):
    """moto has no engine catalog: the engine description's bundled one (the sandbox's) decides."""
    from labkit.config import LabConfig
    from labkit.lab.plan import plan

    with pytest.raises(ConfigError) as refused:
        plan(LabConfig(engine_version=version, backend="sandbox"), moto_backend)
    assert refused.value.field == "engine_version" and status in refused.value.message
    offered = plan(LabConfig(engine_version="8.0.mysql_aurora.3.08.2", backend="sandbox"), moto_backend)
    assert any("8.0.mysql_aurora.3.08.2" in note for note in offered.notes)
