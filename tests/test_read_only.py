"""Read-only places: an archived results folder, a report folder without write access, a shared read-only cache.

Each ends in one line naming the folder and exit 2, or (reading) works without writing anything; a run whose
report cannot be written keeps its measurement and its exit status. The folders are made read-only for real:
a read-only bind mount as root (where permissions stop nothing), permissions otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers import MNIST_QUICK, assert_one_line_error, run_main


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` as a read-only place for the duration (its content kept)."""
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in [folder, *folder.rglob("*")] if path.is_dir()}
        for path in modes:
            path.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            yield folder
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount a read-only folder here: {mounted.stderr.strip()}")
    try:
        remounted = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True)
        assert remounted.returncode == 0, remounted.stderr
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.fixture(scope="module")
def archived_results(tmp_path_factory, variant_cache):
    """A results folder with one real run and its index."""
    results = tmp_path_factory.mktemp("archive") / "results"
    from edgebench.cli.main import main

    assert main(["run", "--device", "local", *MNIST_QUICK, "--variants", "float32,int8", "--results-dir", str(results),
                 "--cache-dir", str(variant_cache)]) == 0  # fmt: skip
    return results


def test_history_reads_a_read_only_results_folder(archived_results, capfd):
    with read_only(archived_results):
        shown = run_main(capfd, "history", "--results-dir", archived_results, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert "int8" in shown.stdout and "float32" in shown.stdout


def test_history_rebuild_on_a_read_only_folder_is_one_line(archived_results, capfd):
    with read_only(archived_results):
        refused = run_main(capfd, "history", "rebuild", "--results-dir", archived_results)
    assert_one_line_error(refused, "cannot rebuild the history index", f"{archived_results} is not writable")


def test_a_report_into_a_read_only_folder_is_one_line(archived_results, tmp_path, capfd):
    (run_folder,) = list(archived_results.glob("local/*"))
    out = tmp_path / "out"
    out.mkdir()
    with read_only(out):
        refused = run_main(capfd, "report", run_folder, "-o", out / "report.html")
        nested = run_main(capfd, "report", run_folder, "-o", out / "sub" / "report.html")
    assert_one_line_error(refused, "cannot write the report", str(out))
    assert_one_line_error(nested, "cannot write the report", str(out))


def test_run_report_into_a_read_only_folder_keeps_the_run_and_its_exit(tmp_path, variant_cache, capfd):
    out = tmp_path / "out"
    out.mkdir()
    results = tmp_path / "results"
    with read_only(out):
        done = run_main(capfd, "run", "--device", "local", *MNIST_QUICK, "--variants", "float32", "--results-dir",
                        results, "--cache-dir", variant_cache, "--report", out / "run.html")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    (folder,) = list(results.glob("local/*"))
    assert (folder / "float32.json").is_file()
    assert f"edgebench: warning: cannot write the report {out / 'run.html'}: {out} " in done.stderr
    assert f"the run is in {folder}" in done.stderr


def test_a_read_only_cache_serves_what_it_has_and_refuses_to_build(tmp_path, variant_cache, capfd):
    cache = tmp_path / "cache"
    shutil.copytree(variant_cache, cache)
    results = tmp_path / "results"
    with read_only(cache):
        served = run_main(capfd, "run", "--device", "local", *MNIST_QUICK, "--variants", "float32,int8",
                          "--results-dir", results, "--cache-dir", cache)  # fmt: skip
        refused = run_main(capfd, "run", "--device", "local", *MNIST_QUICK, "--variants", "float32,int8",
                           "--results-dir", results, "--cache-dir", cache / "elsewhere")  # fmt: skip
    assert served.returncode == 0, served.stderr
    assert_one_line_error(refused, "cannot write variant", f"{cache} ", "--cache-dir a writable folder")
    assert len(list(results.glob("local/*"))) == 1  # the refused run measured nothing


def test_files_edgebench_writes_follow_the_umask(tmp_path):
    from edgebench.core.fileio import atomic_write_json

    previous = os.umask(0o022)
    try:
        shared = atomic_write_json(tmp_path / "shared.json", {})
        os.umask(0o077)
        private = atomic_write_json(tmp_path / "private.json", {})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_history_without_an_index_says_to_rebuild_it(archived_results, tmp_path, capfd):
    copy = tmp_path / "results"
    shutil.copytree(archived_results, copy, ignore=shutil.ignore_patterns("history.sqlite*"))
    refused = run_main(capfd, "history", "--results-dir", copy)
    assert_one_line_error(refused, "lists no runs, but", "holds 1 run folder(s)", "'edgebench history rebuild'")
    assert run_main(capfd, "history", "rebuild", "--results-dir", copy).returncode == 0
    assert "float32" in run_main(capfd, "history", "--results-dir", copy).stdout
