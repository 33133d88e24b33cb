"""Test phones: a FAKE adbd (tests/fake_adbd.py) per phone, reached through the real `adb` client and server.

Each test session runs its own adb server on a free port (ANDROID_ADB_SERVER_PORT), so the tests
never touch a developer's adb server or real phones. The "device root" of a phone holds the
stand-ins a stock Android shell has and this host does not: bin/getprop (reading root/props) and
bin/dumpsys (battery only), both named as stand-ins in their first line.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edgebench.emulated.sshd import free_port

HERE = Path(__file__).resolve().parent
FAKE_ADBD = HERE / "fake_adbd.py"
STANDIN_BINARY = HERE / "standin_benchmark_model.py"
PROPS = {
    "ro.product.model": "Pixel 7 (FAKE adbd test double)",
    "ro.product.manufacturer": "Google",
    "ro.soc.model": "GS201",
    "ro.soc.manufacturer": "Google",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
}


def adb_unavailable_reason() -> str | None:
    if not shutil.which("adb"):
        return "the adb client is not installed (apt-get install adb; .ci/run does)"
    return None


@dataclass
class FakePhone:
    port: int
    root: Path
    process: subprocess.Popen

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def unplug(self) -> None:
        """Gone from the network: the adbd dies, its connection resets."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.thaw()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()


def start_phone(root: Path, mode: str | None = None, env: dict | None = None) -> FakePhone:
    """`env` is the phone's environment: what its shell commands (the stand-in binary) see."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "props").write_text("".join(f"{k}={v}\n" for k, v in PROPS.items()))
    getprop = root / "bin" / "getprop"
    getprop.write_text(
        "#!/bin/sh\n# STAND-IN for Android's getprop (the FAKE adbd's device root)\n"
        f'sed -n "s/^$1=//p" {root / "props"}\n'
    )
    dumpsys = root / "bin" / "dumpsys"
    dumpsys.write_text(
        "#!/bin/sh\n# STAND-IN for Android's dumpsys (battery only)\n"
        '[ "$1" = battery ] && printf "Current Battery Service state:\\n  level: 81\\n  temperature: 312\\n"\n'
    )
    for script in (getprop, dumpsys):
        script.chmod(0o755)
    port = free_port()
    argv = [sys.executable, str(FAKE_ADBD), "--port", str(port), "--root", str(root)]
    if mode:
        argv.append(f"--{mode}")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=dict(os.environ, **(env or {})))  # fmt: skip
    process.stdout.readline()  # "listening": the port is open
    return FakePhone(port, root, process)


def binary_wrapper(folder: Path) -> Path:
    """What is pushed as 'benchmark_model': a shell script that execs the stand-in with this interpreter."""
    wrapper = folder / "benchmark_model"
    wrapper.write_text(
        f'#!/bin/sh\n# STAND-IN benchmark_model (edgebench tests)\nexec {sys.executable} {STANDIN_BINARY} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def phone_file(folder: Path, phone: FakePhone, name: str = "phone", workdir: Path | None = None, **extra) -> Path:
    """A device file for the fake phone; `extra` top-level keys and sections override the defaults."""
    lines = [
        'transport = "adb"',
        f'description = "FAKE adbd test phone on {phone.serial}"',
        f'workdir = "{workdir or phone.root / "data/local/tmp/edgebench"}"',
        'tags = ["android", "test-double"]',
    ]
    lines += [f"{key} = {value}" for key, value in extra.pop("top", {}).items()]
    lines += ["", "[adb]", f'serial = "{phone.serial}"', "connect_timeout = 10", "command_timeout = 20"]
    binary = extra.pop("benchmark_model", None)
    lines += ["", "[benchmark_model]"]
    if binary is None:
        lines.append(f'path = "{binary_wrapper(folder)}"')
        lines.append('version = "stand-in (host ai_edge_litert)"')
    else:
        lines += [f"{key} = {value}" for key, value in binary.items()]
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def stop_adb_server(port: int) -> None:
    env = dict(os.environ, ANDROID_ADB_SERVER_PORT=str(port))
    subprocess.run(["adb", "kill-server"], env=env, capture_output=True, timeout=30)


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


if __name__ == "__main__":
    # python -m tests.adb_helpers FOLDER: serve one FAKE adbd test phone until Ctrl-C, with FOLDER/phone.toml for it.
    folder = Path(sys.argv[1]).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    phone = start_phone(folder / "root")
    device = phone_file(folder, phone)
    print(f"FAKE adbd test phone on {phone.serial}; device file {device}; Ctrl-C to stop", flush=True)
    try:
        phone.process.wait()
    except KeyboardInterrupt:
        phone.stop()
