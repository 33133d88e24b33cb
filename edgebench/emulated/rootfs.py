"""Assemble a Raspberry Pi's Python stack as an aarch64 root filesystem, for qemu.

    python -m edgebench.emulated.rootfs [--cache ~/.cache/edgebench/pi4-emulated] [--stack all]

Debian bookworm's arm64 python3.11 (Raspberry Pi OS Bookworm, 64-bit), and one of two
runtime stacks, each its own root filesystem in the cache:
- tflite-runtime: the aarch64 wheels of tflite-runtime 2.14.0 (its last release) and
  numpy 1.26 (tflite-runtime does not work with numpy 2), no psutil: older boards;
- ai-edge-litert: what `pip install ai-edge-litert` brings on Bookworm today (2.3.0 with
  numpy 2 and its other dependencies). Under qemu it needs an ARM /proc/cpuinfo, which
  the board launcher provides (edgebench.emulated.launcher).

Packages come from Debian's arm64 archive with apt-get download (no root, no
binfmt_misc), wheels with pip download --platform; both are unpacked into
<cache>/<rootfs folder>. A second call finds the stamp of the first and does nothing.
Needs: apt-get, dpkg-deb, pip, and qemu-aarch64-static (Debian's
qemu-user-static) for the final check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgebench.core.errors import EdgebenchError
from edgebench.devices.setup import pip_platforms

DEFAULT_CACHE = Path("~/.cache/edgebench/pi4-emulated").expanduser()

# python3.11's dependency closure on bookworm arm64 (apt-cache depends --recurse),
# without what an interpreter never loads (perl via mime-support, dpkg, tar),
# plus libstdc++6 and libgcc-s1, which tflite-runtime's C++ extension needs.
DEBIAN_PACKAGES = (
    "gcc-12-base", "libbz2-1.0", "libc6", "libcom-err2", "libcrypt1", "libdb5.3", "libexpat1", "libffi8",
    "libgcc-s1", "libgdbm-compat4", "libgdbm6", "libgssapi-krb5-2", "libk5crypto3", "libkeyutils1", "libkrb5-3",
    "libkrb5support0", "liblzma5", "libncursesw6", "libnsl2", "libpython3.11-minimal", "libpython3.11-stdlib",
    "libreadline8", "libsqlite3-0", "libssl3", "libstdc++6", "libtinfo6", "libtirpc-common", "libtirpc3",
    "libuuid1", "media-types", "python3.11", "python3.11-minimal", "readline-common", "zlib1g",
)  # fmt: skip


@dataclass(frozen=True)
class Stack:
    """One runtime stack over the same Debian python3.11."""

    name: str
    folder: str  # the root filesystem's folder in the cache
    wheels: tuple[str, ...]
    with_dependencies: bool  # as `pip install` would bring them (ai-edge-litert), or exactly these (tflite-runtime)
    module: str  # what the check imports


STACKS = {
    "tflite-runtime": Stack("tflite-runtime", "rootfs", ("tflite-runtime==2.14.0", "numpy==1.26.4"), False,
                            "tflite_runtime"),
    "ai-edge-litert": Stack("ai-edge-litert", "rootfs-litert", ("ai-edge-litert==2.3.0",), True,
                            "ai_edge_litert"),
}  # fmt: skip
PYTHON = "usr/bin/python3.11"
SITE_PACKAGES = "usr/local/lib/python3.11/dist-packages"  # on Debian's sys.path
BOOKWORM_GLIBC = ("glibc", "2.36")
QEMU = "qemu-aarch64-static"
QEMU_CPU = "cortex-a72"  # the Pi 4's core


def recipe_digest(stack: Stack = STACKS["tflite-runtime"]) -> str:
    recipe = [DEBIAN_PACKAGES, list(stack.wheels), PYTHON, SITE_PACKAGES]
    if stack.with_dependencies:
        recipe.append("with dependencies")
    return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:16]


def python_command(rootfs: Path) -> list[str]:
    """The argv that runs the rootfs's python3.11 under qemu (no binfmt_misc here: qemu is named)."""
    return [QEMU, "-cpu", QEMU_CPU, "-L", str(rootfs), str(rootfs / PYTHON)]


def build(cache: Path = DEFAULT_CACHE, say=print, stack: str = "tflite-runtime") -> Path:
    recipe = STACKS[stack]
    cache = Path(cache).expanduser()
    rootfs = cache / recipe.folder
    stamp = cache / f"{recipe.folder}.complete"
    if stamp.is_file() and stamp.read_text().strip() == recipe_digest(recipe) and (rootfs / PYTHON).is_file():
        return rootfs
    for tool in ("apt-get", "dpkg-deb", QEMU):
        if not shutil.which(tool):
            hint = " (apt-get install qemu-user-static)" if tool == QEMU else ""
            raise EdgebenchError(f"building the emulated Pi 4 needs {tool}{hint}")

    debs = cache / "debs"
    lists = cache / "apt-lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    debs.mkdir(parents=True, exist_ok=True)
    apt = ["apt-get", "-q", "-oAPT::Architecture=arm64", "-oAPT::Architectures=arm64"]
    apt += [f"-oDir::State::Lists={lists}", f"-oDir::Cache={cache / 'apt-cache'}", "-oDebug::NoLocking=1"]
    say("fetching Debian bookworm arm64 package lists")
    _run([*apt, "update"], "apt-get update (arm64 lists)")
    missing = [
        p for p in DEBIAN_PACKAGES if not list(debs.glob(f"{p}_*_arm64.deb")) and not list(debs.glob(f"{p}_*_all.deb"))
    ]
    if missing:
        say(f"downloading {len(missing)} arm64 packages")
        _run([*apt, "download", *missing], "apt-get download", cwd=debs)

    wheels = cache / ("wheels" if recipe.name == "tflite-runtime" else f"wheels-{recipe.name}")
    wheels.mkdir(exist_ok=True)
    say("downloading aarch64 wheels: " + ", ".join(recipe.wheels))
    platforms = [flag for tag in pip_platforms("aarch64", BOOKWORM_GLIBC) for flag in ("--platform", tag)]
    deps = [] if recipe.with_dependencies else ["--no-deps"]
    _run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", *deps, "--dest", str(wheels),
         *platforms, "--python-version", "3.11", "--implementation", "cp", *recipe.wheels],
        "pip download",
    )  # fmt: skip

    say("unpacking into the root filesystem")
    staging = cache / f"{recipe.folder}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(staging)], f"dpkg-deb -x {deb.name}")
    site = staging / SITE_PACKAGES
    site.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
            for info in archive.infolist():  # zip drops the execute bits of shared objects' neighbours
                mode = info.external_attr >> 16
                if mode:
                    (site / info.filename).chmod(mode & 0o777)

    say("checking the stack under qemu")
    # Importing is safe under qemu for both stacks; ai-edge-litert's CPU detection runs when an interpreter is made.
    check = subprocess.run(
        [*python_command(staging), "-c", f"import numpy, {recipe.module}, platform; print(platform.machine(), "
         f"platform.python_version(), numpy.__version__, {recipe.module}.__version__)"],
        capture_output=True, text=True,
    )  # fmt: skip
    if check.returncode != 0:
        raise EdgebenchError(f"the emulated Python does not start: {check.stderr.strip().splitlines()[-1:]}")
    shutil.rmtree(rootfs, ignore_errors=True)
    staging.rename(rootfs)
    stamp.write_text(recipe_digest(recipe) + "\n")
    say(f"ready: {check.stdout.strip()} in {rootfs}")
    return rootfs


def _run(argv, what, cwd=None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [f"exit {result.returncode}"]
        raise EdgebenchError(f"{what} failed: {last[0]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--stack", choices=[*STACKS, "all"], default="all", help="which runtime stack (all)")
    args = parser.parse_args(argv)
    try:
        for stack in STACKS if args.stack == "all" else [args.stack]:
            build(args.cache, stack=stack)
    except EdgebenchError as error:
        print(f"edgebench: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
