"""`edgebench devices setup` against the real sshd host, online and offline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.core.errors import EdgebenchError
from edgebench.devices.setup import pip_platforms, runtime_packages
from tests.helpers import assert_one_line_error, run_edgebench, run_main

DEBIAN_PYTHON = "/usr/bin/python3"


def debian_python_with_venv() -> bool:
    if not Path(DEBIAN_PYTHON).is_file():
        return False
    return subprocess.run([DEBIAN_PYTHON, "-c", "import venv, ensurepip"], capture_output=True).returncode == 0


@pytest.mark.skipif(not debian_python_with_venv(), reason="no /usr/bin/python3 with venv+ensurepip to act as a board")
@pytest.mark.parametrize("mode", [[], ["--offline"]], ids=["online", "offline"])
def test_setup_makes_an_environment_that_runs_the_agent(ssh_host, tmp_path, mode, variant_cache):
    workdir = tmp_path / "board-workdir"
    device = ssh_host.device_file(tmp_path / "board.toml", python="~/no-runtime-yet/python", workdir=str(workdir))
    completed = run_edgebench("devices", "setup", str(device), "--base-python", DEBIAN_PYTHON, *mode)
    assert completed.returncode == 0, completed.stderr
    venv_python = workdir / "venv" / "bin" / "python"
    message = " ".join(completed.stderr.split())
    assert f"board is ready: {venv_python} has ai_edge_litert" in message
    assert f'set python = "{venv_python}" in {device}' in message
    if mode:  # the wheels came from this host, pushed under their hashes
        assert any(p.suffix == ".whl" for p in (workdir / "by-sha256").rglob("*"))

    # The device file pointed at the new environment runs the agent for real.
    ready = ssh_host.device_file(tmp_path / "ready.toml", python=str(venv_python), workdir=str(workdir))
    run = run_edgebench(
        "run", "--device", str(ready), "--model", "mnist", "--variants", "int8", "--samples", "100",
        "--min-runs", "5", "--min-seconds", "0.05", "--rounds", "1", "--results-dir", str(tmp_path / "r"),
        "--cache-dir", str(variant_cache),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    shutil.rmtree(workdir)


def test_setup_refuses_a_local_device():
    completed = run_edgebench("devices", "setup", "local")
    assert completed.returncode == 2 and "install edgebench's dependencies with pip" in completed.stderr


@pytest.mark.parametrize(
    ("python", "machine", "expected"),
    [
        ((3, 11), "aarch64", ["numpy", "ai-edge-litert"]),  # Bookworm
        ((3, 13), "aarch64", ["numpy", "ai-edge-litert"]),  # Trixie
        ((3, 9), "aarch64", ["numpy<2", "tflite-runtime==2.14.0"]),  # Bullseye
        ((3, 12), "x86_64", ["numpy", "ai-edge-litert"]),
    ],
)
def test_the_runtime_fits_the_python_and_cpu(python, machine, expected):
    assert runtime_packages(python, machine) == expected


@pytest.mark.parametrize(("python", "machine"), [((3, 7), "aarch64"), ((3, 11), "armv7l"), ((3, 15), "x86_64")])
def test_no_runtime_fits(python, machine):
    with pytest.raises(EdgebenchError, match="no TFLite runtime wheels"):
        runtime_packages(python, machine)


def test_offline_platform_tags_follow_the_devices_glibc():
    tags = pip_platforms("aarch64", ("glibc", "2.36"))
    assert (
        tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in tags and tags[-1] == "manylinux2014_aarch64"
    )
    with pytest.raises(EdgebenchError, match="glibc"):
        pip_platforms("aarch64", ("", ""))


def test_setup_on_termux_says_what_to_do_instead_of_failing_in_pip(ssh_host, tmp_path, capfd):
    """A Python whose prefix is Termux's (a venv under .../com.termux/files/usr): no wheel fits its libc."""
    prefix = tmp_path / "data" / "data" / "com.termux" / "files" / "usr"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    device = ssh_host.device_file(tmp_path / "termux.toml", workdir=str(tmp_path / "workdir"))
    completed = run_main(capfd, "devices", "setup", str(device), "--base-python", str(prefix / "bin" / "python"))
    assert_one_line_error(completed, "runs Termux", "pkg install python python-numpy", "--benchmark-binary")


def test_setup_pushes_a_benchmark_binary_and_starts_it_on_the_phone(adb_server, tmp_path, capfd):
    from tests.adb_helpers import binary_wrapper, phone_file, start_phone

    phone = start_phone(tmp_path / "root")
    try:
        device = phone_file(tmp_path, phone)
        binary = binary_wrapper(tmp_path / "root")  # a script: any ABI its interpreter runs
        done = run_main(capfd, "devices", "setup", str(device), "--benchmark-binary", str(binary))
        assert done.returncode == 0, done.stderr
        assert "phone is ready: benchmark_model" in " ".join(done.stderr.split())
        wrong_abi = run_main(capfd, "devices", "setup", str(device), "--benchmark-binary", "/bin/true")
        assert_one_line_error(wrong_abi, "is built for x86_64", "is arm64-v8a")
        missing = run_main(capfd, "devices", "setup", str(device))
        assert_one_line_error(missing, "pass --benchmark-binary FILE")
    finally:
        phone.stop()
