"""Atomic writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os

import pytest

from edgebench.core import fileio


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    fileio.atomic_write_json(target, {"status": "old"})

    def broken_replace(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        fileio.atomic_write_json(target, {"status": "new"})
    assert target.read_text().strip().endswith("}") and '"old"' in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_an_interrupted_write_leaves_no_temp(tmp_path, monkeypatch):
    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write_bytes(tmp_path / "model.tflite", b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_sha256_of_a_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert fileio.sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
