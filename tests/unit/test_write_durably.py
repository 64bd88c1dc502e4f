"""labkit.home.write_durably, which the sandbox's control-plane snapshot and its database records go through: the
new file whole or the old one, owner-only, and the rename itself flushed (the folder's fsync), so a power cut
after a call answered cannot bring back the file as it was before."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from labkit.home import write_durably
from labkit.sandbox.daemon.persist import ControlPlaneStore


def _fsynced(monkeypatch) -> list[str]:
    """Record what each os.fsync flushed: 'dir' or 'file'."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_the_data_then_the_folder_are_flushed_and_the_file_is_the_owners(tmp_path: Path, monkeypatch):
    seen = _fsynced(monkeypatch)
    target = tmp_path / "records.json"
    write_durably(target, b"{}")
    assert seen == ["file", "dir"]
    assert target.read_bytes() == b"{}" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["records.json"], "no temporary file left"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial_one(tmp_path: Path, monkeypatch):
    target = tmp_path / "records.json"
    write_durably(target, b"old")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        write_durably(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["records.json"]


def test_the_snapshot_flushes_its_folder_after_the_rename(tmp_path: Path, fast_moto, monkeypatch):
    (tmp_path / "data").mkdir()
    with mock_aws():
        store = ControlPlaneStore(tmp_path, DEFAULT_ACCOUNT_ID)
        seen = _fsynced(monkeypatch)
        store.save()
    assert seen[-2:] == ["file", "dir"], seen
