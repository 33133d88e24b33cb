"""The emulated board's launcher: its Python under qemu, seeing the board's own /proc/cpuinfo.

Under qemu's user mode the guest reads the host's x86 /proc/cpuinfo. LiteRT's CPU
detection then finds no ARM processor and crashes (SIGSEGV at address 0x8 in
ai-edge-litert 2.3.0), and XNNPACK would choose kernels from the host's features, not
the board's. So each launch runs in a private mount namespace (`unshare -m`, propagation
private: the host's /proc is never touched) in which a cpuinfo generated from the board
profile is bound over /proc/cpuinfo, and qemu emulates that profile's core. A host that
cannot make mount namespaces (not root, no unshare) gets one line saying so.

    python -m edgebench.emulated.launcher --profile pi5 --stack ai-edge-litert   # writes, prints its path
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from edgebench.core.fileio import atomic_write_bytes
from edgebench.emulated.rootfs import DEFAULT_CACHE, PYTHON, QEMU, STACKS

EXIT_NO_NAMESPACE = 126  # as a shell reports "cannot execute"
NO_NAMESPACE = ("the emulated {profile} needs a private mount namespace for its /proc/cpuinfo "
                "(root and util-linux unshare); unshare -m said")  # fmt: skip


@dataclass(frozen=True)
class BoardProfile:
    name: str
    board: str  # as Raspberry Pi OS's /proc/cpuinfo names it
    qemu_cpu: str  # the core qemu emulates (qemu 7.2 knows cortex-a72 and cortex-a76)
    variant: str
    part: str
    revision: int
    features: str
    bogomips: str
    cores: int = 4


PROFILES = {
    # BCM2711: Cortex-A72 r0p3; no dot product (int8 takes XNNPACK's NEON kernels).
    "pi4": BoardProfile("pi4", "Raspberry Pi 4 Model B Rev 1.5", "cortex-a72", "0x0", "0xd08", 3,
                        "fp asimd evtstrm crc32 cpuid", "108.00"),
    # BCM2712: Cortex-A76 r4p1; dot product (asimddp) and fp16 arithmetic: XNNPACK's int8 dot-product kernels.
    "pi5": BoardProfile("pi5", "Raspberry Pi 5 Model B Rev 1.0", "cortex-a76", "0x4", "0xd0b", 1,
                        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop "
                        "asimddp", "108.00"),
}  # fmt: skip


def cpuinfo(profile: BoardProfile) -> str:
    """/proc/cpuinfo as the board's arm64 kernel writes it."""
    blocks = [
        f"processor\t: {index}\nBogoMIPS\t: {profile.bogomips}\nFeatures\t: {profile.features}\n"
        f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {profile.variant}\n"
        f"CPU part\t: {profile.part}\nCPU revision\t: {profile.revision}\n"
        for index in range(profile.cores)
    ]
    return "\n".join(blocks) + f"\nModel\t\t: {profile.board}\n"


def launcher_path(cache: Path, profile: str, stack: str) -> Path:
    return Path(cache).expanduser() / f"launch-{profile}-{STACKS[stack].folder}.sh"


def write_launcher(cache: Path = DEFAULT_CACHE, profile: str = "pi5", stack: str = "ai-edge-litert") -> Path:
    """The launcher script and its cpuinfo, in the cache (the device files name them)."""
    board = PROFILES[profile]
    cache = Path(cache).expanduser()
    info = cache / f"cpuinfo-{profile}"
    atomic_write_bytes(info, cpuinfo(board).encode())
    rootfs = cache / STACKS[stack].folder
    inner = ('cpuinfo=$1; root=$2; shift 2; mount --bind "$cpuinfo" /proc/cpuinfo || exit 126; '
             f'exec {QEMU} -cpu {board.qemu_cpu} -L "$root" "$root/{PYTHON}" "$@"')  # fmt: skip
    script = f"""#!/bin/sh
# The emulated {board.board} ({board.qemu_cpu}) with {stack}: python3.11 under qemu, in a private mount
# namespace whose /proc/cpuinfo is the board's. Written by edgebench.emulated.launcher; do not edit.
if ! why=$(unshare -m true 2>&1); then
  echo "edgebench: {NO_NAMESPACE.format(profile=profile)}: $why" >&2
  exit {EXIT_NO_NAMESPACE}
fi
exec unshare -m sh -c {shlex.quote(inner)} sh {shlex.quote(str(info))} {shlex.quote(str(rootfs))} "$@"
"""
    path = launcher_path(cache, profile, stack)
    atomic_write_bytes(path, script.encode())
    path.chmod(0o755)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--profile", choices=PROFILES, default="pi5")
    parser.add_argument("--stack", choices=STACKS, default="ai-edge-litert")
    args = parser.parse_args(argv)
    print(write_launcher(args.cache, args.profile, args.stack))
    return 0


if __name__ == "__main__":
    sys.exit(main())
