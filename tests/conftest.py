"""Shared fixtures: the real MNIST zoo model and its variants, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from filelock import FileLock

from edgebench.model.dataset import load_dataset
from edgebench.quantize.variants import VARIANT_NAMES, VARIANT_SPECS, Variant, build_variants
from edgebench.zoo import load_zoo_model

# Whole end-to-end files: real nights, emulated boards, labs, phones, browsers, stalls. `pytest -m "not slow"`
# leaves them out for an edit-test loop; CI runs everything.
SLOW_FILES = {
    "test_adb.py", "test_agent_runtimes.py", "test_device_farm.py", "test_device_setup.py", "test_emulated_litert.py",
    "test_emulated_pi4.py", "test_farm.py", "test_farm_e2e.py", "test_labs.py", "test_leases.py",
    "test_regression_e2e.py", "test_report.py", "test_stalls.py",
}  # fmt: skip


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def mnist():
    return load_zoo_model("mnist")


@pytest.fixture(scope="session")
def mnist_test_set(mnist):
    return load_dataset(mnist.dataset_path)


@pytest.fixture(scope="session", autouse=True)
def own_host_locks(tmp_path_factory):
    """This test session's own host locks: a developer's edgebench run, another test session on the machine, or
    another xdist worker of this one never finds "device local is in use" (tests of the lock set their own)."""
    previous = os.environ.get("EDGEBENCH_LOCK_DIR")
    os.environ["EDGEBENCH_LOCK_DIR"] = str(tmp_path_factory.mktemp("host-locks"))
    yield
    if previous is None:
        os.environ.pop("EDGEBENCH_LOCK_DIR", None)
    else:
        os.environ["EDGEBENCH_LOCK_DIR"] = previous


def _shared_temp(tmp_path_factory) -> Path:
    """A folder every xdist worker of this run shares (the run's base temp), or this session's own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def variant_cache(tmp_path_factory):
    """One variant cache for the whole test run, shared by xdist workers: a variant is quantized once.
    Writes into it are atomic and content-addressed, so workers may fill it at the same time."""
    folder = _shared_temp(tmp_path_factory) / "variant-cache"
    folder.mkdir(exist_ok=True)
    return folder


# Every quantized variant; the pruned family has its own fixture in test_prune.py (its post-training files are
# meant to lose accuracy, and building them for every session would cost each one).
QUANTIZED_NAMES = tuple(name for name in VARIANT_NAMES if VARIANT_SPECS[name].sparsity_target is None)


@pytest.fixture(scope="session")
def mnist_variants(mnist, variant_cache) -> dict[str, Variant]:
    """Every quantized variant of the zoo MNIST model, made for real into the run's cache (by one worker at a
    time)."""
    with FileLock(str(variant_cache) + ".lock"):
        results = build_variants(mnist, QUANTIZED_NAMES, cache_dir=variant_cache)
    failures = [r for r in results if not isinstance(r, Variant)]
    assert not failures, failures
    return {r.name: r for r in results}


@pytest.fixture(scope="session")
def ssh_host(tmp_path_factory):
    """A real OpenSSH sshd on loopback for the whole session (the 'device' is this machine)."""
    from edgebench.emulated.sshd import make_host, sshd_unavailable_reason

    reason = sshd_unavailable_reason()
    if reason:
        pytest.skip(reason)
    host = make_host(tmp_path_factory.mktemp("sshd")).start()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def namespace_hosts(tmp_path_factory):
    """Two device hosts, each an sshd in its own network namespace with its own address."""
    from edgebench.emulated.sshd import make_namespace_host, netns_unavailable_reason, remove_namespace_host

    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    hosts = []
    try:
        for index in range(2):
            hosts.append(make_namespace_host(tmp_path_factory.mktemp(f"board{index}"), index))
        yield hosts
    finally:
        for host in hosts:
            remove_namespace_host(host)


@pytest.fixture(scope="session")
def emulated_pis(tmp_path_factory):
    """One emulated-Pi host for the whole session (both root filesystems, both launchers, one sshd); yields a
    function that writes a shipped emulated device file pointed at it."""
    import os
    import shutil
    from pathlib import Path

    from edgebench.emulated import pi4, rootfs
    from edgebench.emulated.sshd import free_port, sshd_unavailable_reason

    reason = sshd_unavailable_reason() or (None if shutil.which(rootfs.QEMU) else "qemu-user-static is not installed")
    if reason:
        pytest.skip(reason)
    cache = Path(os.environ.get("EDGEBENCH_PI4_CACHE", rootfs.DEFAULT_CACHE)).expanduser()
    folder = tmp_path_factory.mktemp("emulated")
    # Its own sshd keys and workdir: the rootfs cache is shared by every test session on this machine, and a
    # second session (a CI run beside a developer's) must neither replace this one's keys nor find its lease.
    host = pi4.start(cache, port=free_port(), say=lambda message: None, sshd_folder=folder / "sshd")

    def device_file(name: str) -> Path:
        shipped = Path(__file__).resolve().parent.parent / "devices" / f"{name}.toml"
        text = shipped.read_text().replace("port = 2222", f"port = {host.port}")
        for own in ("client_ed25519", "known_hosts"):
            text = text.replace(f"~/.cache/edgebench/pi4-emulated/{own}", str(host.folder / own))
        text = text.replace("~/.cache/edgebench/pi4-emulated/workdir", str(folder / "workdir"))
        text = text.replace("~/.cache/edgebench/pi4-emulated", str(cache))
        for own in (host.folder / "known_hosts", folder / "workdir"):
            assert str(own) in text, f"the shipped device file no longer names {own.name} where the test expects"
        device = folder / f"{name}.toml"
        device.write_text(text)
        return device

    yield device_file
    host.stop()


@pytest.fixture(scope="session")
def pi4(emulated_pis):
    """The shipped emulated Pi 4 device file (tflite-runtime 2.14), pointed at the session's emulated host."""
    return emulated_pis("pi4-emulated")


@pytest.fixture(scope="session")
def adb_server():
    """A private adb server for the session (its own port), killed at the end; skips without the adb client."""
    import os

    from edgebench.emulated.sshd import free_port
    from tests.adb_helpers import adb_unavailable_reason, stop_adb_server

    reason = adb_unavailable_reason()
    if reason:
        pytest.skip(reason)
    port = free_port()
    previous = os.environ.get("ANDROID_ADB_SERVER_PORT")
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(port)  # every adb this session starts, edgebench's included
    yield port
    stop_adb_server(port)
    if previous is None:
        os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
    else:
        os.environ["ANDROID_ADB_SERVER_PORT"] = previous
