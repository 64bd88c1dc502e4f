"""The user's shared engine templates (labkit.sandbox.templates): made once, and used only when nobody but their
owner (or root) can have changed them; otherwise the home makes its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit.sandbox import templates
from labkit.sandbox.templates import READY, shared_template, untrusted_reason


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "labkit"


def _builder(calls: list[Path]):
    def build(folder: Path) -> None:
        calls.append(folder)
        (folder / "data").write_text("initialised")

    return build


def test_a_template_is_made_once_and_then_reused_by_every_home(cache, tmp_path):
    calls: list[Path] = []
    first = shared_template("engine-v1", _builder(calls), tmp_path / "home-a" / "template")
    second = shared_template("engine-v1", _builder(calls), tmp_path / "home-b" / "template")
    assert first == second == cache / "engine-v1"
    assert len(calls) == 1
    assert (first / READY).exists() and (first / "data").read_text() == "initialised"
    assert sorted(p.name for p in cache.iterdir()) == ["engine-v1"]  # no build folder left behind
    assert untrusted_reason(first) is None


def test_a_half_made_template_is_made_again(cache, tmp_path):
    (cache / "engine-v1").mkdir(parents=True, mode=0o700)  # an interrupted build left it without READY
    calls: list[Path] = []
    template = shared_template("engine-v1", _builder(calls), tmp_path / "home" / "template")
    assert len(calls) == 1 and (template / READY).exists()


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (lambda t: (t / "data").chmod(0o644), "open to other users"),
        (lambda t: (t / "link").symlink_to("/etc/passwd"), "not a plain file"),
        (lambda t: t.parent.chmod(0o777), "can be written by other users"),
    ],
)
def test_a_template_others_could_have_changed_is_not_used_and_the_home_makes_its_own(cache, tmp_path, tamper, reason):
    calls: list[Path] = []
    shared = shared_template("engine-v1", _builder(calls), tmp_path / "home-a" / "template")
    tamper(shared)
    assert reason in (untrusted_reason(shared) or "")
    fallback = tmp_path / "home-b" / "template"
    assert shared_template("engine-v1", _builder(calls), fallback) == fallback
    assert [c for c in calls if c == fallback] == [fallback]
    assert (fallback / READY).exists() and not (fallback.stat().st_mode & 0o077)


def test_a_template_of_another_user_is_not_trusted(cache, tmp_path, monkeypatch):
    shared = shared_template("engine-v1", _builder([]), tmp_path / "home" / "template")
    me = os.geteuid()
    monkeypatch.setattr(templates.os, "geteuid", lambda: me + 1000)  # the files now belong to someone else
    assert "belongs to another user" in (untrusted_reason(shared) or "")
