"""Serve the emulated Raspberry Pis: their root filesystems under qemu, behind one loopback sshd.

    python -m edgebench.emulated.pi4 [--port 2222] [--cache ~/.cache/edgebench/pi4-emulated]

Builds both root filesystems if needed (edgebench.emulated.rootfs: tflite-runtime 2.14 and
ai-edge-litert 2.3), writes the board launchers (edgebench.emulated.launcher: Pi 4 and
Pi 5 profiles with ai-edge-litert), keeps a host key and a client key in the cache, and
runs sshd on 127.0.0.1 until Ctrl-C. Three device files point at exactly this:
devices/pi4-emulated.toml (qemu on the tflite-runtime root filesystem),
devices/pi4-emulated-litert.toml and devices/pi5-emulated.toml (their launchers). Needs
root (sshd, mount namespaces) and Debian's openssh-server and qemu-user-static.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

from edgebench.core.errors import EdgebenchError
from edgebench.emulated.launcher import write_launcher
from edgebench.emulated.rootfs import DEFAULT_CACHE, STACKS, build
from edgebench.emulated.sshd import SshHost, make_host, sshd_unavailable_reason

DEFAULT_PORT = 2222


def start(cache: Path = DEFAULT_CACHE, port: int = DEFAULT_PORT, say=print, sshd_folder: Path | None = None) -> SshHost:
    """Serve the cache's boards. `sshd_folder` gives this sshd its own keys, for a caller (a test session) that
    must not share them with another serving the same cache; the shipped device files name the cache's own."""
    reason = sshd_unavailable_reason()
    if reason:
        raise EdgebenchError(f"cannot serve the emulated Pi 4: {reason}")
    cache = Path(cache).expanduser()
    for stack in STACKS:
        build(cache, say, stack=stack)
    for profile in ("pi4", "pi5"):
        write_launcher(cache, profile, "ai-edge-litert")
    host = make_host(sshd_folder or cache / "sshd", port=port)
    if sshd_folder is None:
        # The device files name these two files at fixed places in the cache.
        shutil.copy(host.client_key, cache / "client_ed25519")
        (cache / "known_hosts").write_text(host.known_hosts_line)
    (cache / "workdir").mkdir(exist_ok=True)
    try:
        return host.start()
    except RuntimeError as error:
        raise EdgebenchError(f"cannot serve the emulated Pi 4: {error}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    try:
        host = start(args.cache, args.port)
    except EdgebenchError as error:
        print(f"edgebench: error: {error}", file=sys.stderr)
        return 2
    print(f"emulated Pi 4 and Pi 5 listening on {host.address}:{host.port}; Ctrl-C to stop", flush=True)
    # `kill` (SIGTERM) stops it as cleanly as Ctrl-C: its sshd must not outlive it.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while host.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
