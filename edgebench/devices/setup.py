"""`edgebench devices setup`: a virtual environment on the device with numpy and a TFLite runtime.

The runtime is chosen from what the device's Python and CPU can install:
ai-edge-litert (CPython 3.10-3.14 on x86_64/aarch64), else tflite-runtime
2.14 with numpy<2 (CPython 3.8-3.11), which is all older boards can have.
Offline, the wheels are downloaded on the host for the device's platform
(`pip download --platform ...`) and pushed, for boards with no internet.
"""

from __future__ import annotations

import json
import posixpath
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from edgebench.backends.python_agent import PythonAgent, require_runnable
from edgebench.core.errors import EdgebenchError
from edgebench.core.fileio import sha256_file
from edgebench.devices.inventory import resolve_device
from edgebench.transport import DeviceError

_DESCRIBE = (
    "import json, platform, sys; "
    "print(json.dumps({'python': list(sys.version_info[:2]), 'machine': platform.machine(), "
    "'libc': list(platform.libc_ver()), 'implementation': platform.python_implementation(), "
    "'termux': 'com.termux' in sys.prefix}))"
)


# Termux's Python links Android's bionic libc: PyPI's manylinux wheels (ai-edge-litert, tflite-runtime) do not
# install there, and neither package publishes an Android wheel. numpy comes from Termux's own repository.
TERMUX_HELP = (
    "device {name!r} runs Termux: pip has no TFLite runtime wheel for Android's libc, so edgebench cannot set up "
    "the Python agent there. Either run 'pkg install python python-numpy' and provide a tflite_runtime you built "
    "for Termux (the agent then runs as on a Pi), or measure with the native binary: set backend = "
    "\"benchmark_model\" and run 'edgebench devices setup {name} --benchmark-binary FILE'"
)


def runtime_packages(python: tuple[int, int], machine: str) -> list[str]:
    if machine not in ("x86_64", "aarch64"):
        raise EdgebenchError(f"no TFLite runtime wheels exist for {machine}; edgebench supports x86_64 and aarch64")
    if (3, 10) <= python <= (3, 14):
        return ["numpy", "ai-edge-litert"]
    if (3, 8) <= python <= (3, 11):
        return ["numpy<2", "tflite-runtime==2.14.0"]
    raise EdgebenchError(f"no TFLite runtime wheels exist for Python {python[0]}.{python[1]} on {machine}")


def pip_platforms(machine: str, libc: tuple[str, str]) -> list[str]:
    """Every manylinux tag a glibc of this version accepts, so pip picks the newest wheel that fits."""
    name, version = libc
    if name != "glibc" or not version:
        raise EdgebenchError(f"offline setup needs a glibc device (found {name or 'unknown'} C library)")
    minor = int(version.split(".")[1])
    return [f"manylinux_2_{m}_{machine}" for m in range(minor, 16, -1)] + [f"manylinux2014_{machine}"]


def setup_device(
    spec: str,
    devices_dir: Path | None = None,
    *,
    offline: bool = False,
    base_python: str = "python3",
    trust_new_host: bool = False,
    say: Callable[[str], None] = lambda message: None,
) -> str:
    from edgebench.devices.connect import endpoint
    from edgebench.transport.ssh import SshTransport

    device = resolve_device(spec, devices_dir)
    if device.transport != "ssh":
        raise EdgebenchError(f"device {device.name!r} is {device.transport}: install edgebench's dependencies with pip")
    with SshTransport(endpoint(device), device.options, trust_new_host=trust_new_host) as transport:
        python = transport.expand_home(base_python)
        result = transport.run([python, "-c", _DESCRIBE], timeout=60)
        if result.exit_code != 0:
            raise DeviceError(f"cannot run {base_python!r} on {transport.address}: {' | '.join(result.stderr_tail)}")
        facts = json.loads(result.stdout.strip().splitlines()[-1])
        if facts.get("termux"):
            raise EdgebenchError(TERMUX_HELP.format(name=device.name))
        version = tuple(facts["python"])
        packages = runtime_packages(version, facts["machine"])
        venv = posixpath.join(transport.workdir(), "venv")
        say(f"{device.name}: Python {version[0]}.{version[1]} on {facts['machine']}; installing {', '.join(packages)}")

        _checked(
            transport, [python, "-m", "venv", venv], "create a virtual environment (Debian: apt install python3-venv)"
        )
        venv_python = posixpath.join(venv, "bin", "python")
        if offline:
            wheels = _push_wheels(transport, packages, version, facts, say)
            _checked(transport, [venv_python, "-m", "pip", "install", "--no-index", *wheels], "install the wheels")
        else:
            _checked(transport, [venv_python, "-m", "pip", "install", "--upgrade", *packages], "pip install")

        probe = PythonAgent(transport).probe(python=[venv_python])
        require_runnable(probe, device.name)
        configured = transport.python()
    runtime = probe["runtime"]
    message = (
        f"{device.name} is ready: {venv_python} has {runtime['name']} {runtime['version']} and numpy {probe['numpy']}"
    )
    if configured != [venv_python]:
        message += f'; set python = "{venv_python}" in {device.source or "its device file"}'
    return message


def _push_wheels(transport, packages, version, facts, say) -> list[str]:
    platforms = pip_platforms(facts["machine"], tuple(facts["libc"]))
    with tempfile.TemporaryDirectory(prefix="edgebench-wheels-") as folder:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", folder]
        command += ["--python-version", f"{version[0]}.{version[1]}", "--implementation", "cp"]
        for platform in platforms:
            command += ["--platform", platform]
        download = subprocess.run([*command, *packages], capture_output=True, text=True)
        if download.returncode != 0:
            last = (download.stderr.strip().splitlines() or ["pip download failed"])[-1]
            raise EdgebenchError(f"cannot download wheels for the device on this host: {last}")
        wheels = sorted(Path(folder).glob("*.whl"))
        say(f"pushing {len(wheels)} wheels ({sum(w.stat().st_size for w in wheels):,} bytes)")
        return [transport.stage(wheel, sha256_file(wheel)) for wheel in wheels]


def _checked(transport, argv, what) -> None:
    result = transport.run(argv, timeout=1800)
    if result.exit_code != 0:
        tail = " | ".join(line for line in result.stderr_tail[-3:] if line.strip())
        raise DeviceError(f"cannot {what} on {transport.address}: {tail or f'exit code {result.exit_code}'}")
