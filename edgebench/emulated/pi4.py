"""Serve the emulated Raspberry Pi 4: its rootfs under qemu, behind a loopback sshd.

    python -m edgebench.emulated.pi4 [--port 2222] [--cache ~/.cache/edgebench/pi4-emulated]

Builds the rootfs if needed (edgebench.emulated.rootfs), keeps a host key and a
client key in the cache, and runs sshd on 127.0.0.1 until Ctrl-C. The device
file devices/pi4-emulated.toml points at exactly this: its `python` runs
qemu-aarch64-static on the rootfs's python3.11. Needs root (sshd) and Debian's
openssh-server and qemu-user-static.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

from edgebench.emulated.rootfs import DEFAULT_CACHE, build
from edgebench.emulated.sshd import SshHost, make_host, sshd_unavailable_reason
from edgebench.errors import EdgebenchError

DEFAULT_PORT = 2222


def start(cache: Path = DEFAULT_CACHE, port: int = DEFAULT_PORT, say=print) -> SshHost:
    reason = sshd_unavailable_reason()
    if reason:
        raise EdgebenchError(f"cannot serve the emulated Pi 4: {reason}")
    cache = Path(cache).expanduser()
    build(cache, say)
    host = make_host(cache / "sshd", port=port)
    # The device file names these two files at fixed places in the cache.
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
    print(f"emulated Pi 4 listening on {host.address}:{host.port}; Ctrl-C to stop", flush=True)
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
