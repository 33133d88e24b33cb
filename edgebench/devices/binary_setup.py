"""`edgebench devices setup NAME --benchmark-binary FILE`: put a benchmark_model binary on a phone and prove it runs.

The binary is checked on this host first (an ELF for the phone's ABI, or a script), pushed
content-addressed like a model, made executable, and started once with --help on the phone.
edgebench does not download it: the official prebuilt binaries are TFLite's nightly builds,
published without a version or sha256 that edgebench could pin, so the user supplies the file
(from the TFLite/LiteRT release or their own build) and the device file records it.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from edgebench.core.errors import EdgebenchError
from edgebench.core.fileio import sha256_file
from edgebench.devices.inventory import Device

# ELF e_machine values (the ELF spec) -> Android ABIs that run them.
ELF_MACHINES = {183: "arm64-v8a", 40: "armeabi-v7a", 62: "x86_64", 3: "x86"}


def binary_abi(path: Path) -> str | None:
    """The ABI an ELF file is built for; None for a script (#!), which runs on any ABI its interpreter does."""
    header = path.read_bytes()[:20]
    if header.startswith(b"#!"):
        return None
    if header[:4] != b"\x7fELF":
        raise EdgebenchError(f"{path} is neither an ELF executable nor a script: not a benchmark_model binary")
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    abi = ELF_MACHINES.get(machine)
    if abi is None:
        raise EdgebenchError(f"{path} is an ELF for machine {machine}, which no Android ABI runs")
    return abi


def setup_binary(device: Device, binary: Path, say) -> str:
    from edgebench.backends.android_facts import facts_script, parse_facts
    from edgebench.backends.benchmark_model import BenchmarkModelBackend
    from edgebench.devices.connect import open_transport

    binary = Path(binary).expanduser().resolve()
    if not binary.is_file():
        raise EdgebenchError(f"--benchmark-binary {binary}: no such file")
    abi = binary_abi(binary)
    with open_transport(device) as transport:
        facts = parse_facts(transport.shell(facts_script(transport.workdir(), None)).stdout)
        phone_abi = facts.get("android", {}).get("abi")
        if abi and phone_abi and abi != phone_abi and not (abi == "armeabi-v7a" and phone_abi == "arm64-v8a"):
            raise EdgebenchError(f"{binary.name} is built for {abi}; device {device.name!r} is {phone_abi}")
        say(f"{device.name}: pushing {binary.name} ({binary.stat().st_size:,} bytes)")
        # Pushed and made executable exactly as a run does it: the backend with this file as its binary.
        source = dataclasses.replace(device.benchmark_model, path=binary, device_path=None)
        remote = BenchmarkModelBackend(transport, device.name, source).binary
        started = transport.shell(f"{shlex.quote(remote)} --help >/dev/null 2>&1; echo exit=$?")
        code = started.stdout.strip().rpartition("exit=")[2]
        if code in ("126", "127"):
            raise EdgebenchError(
                f"{binary.name} does not start on device {device.name!r} (exit {code}): a binary for another ABI "
                "or libc, or a workdir mounted noexec (use /data/local/tmp)"
            )
    return (
        f"{device.name} is ready: {binary.name} (sha256 {sha256_file(binary)[:16]}…) runs at {remote}; set "
        f'[benchmark_model] path = "{binary}" in {device.source or "its device file"}'
    )
