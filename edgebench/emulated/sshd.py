"""Real OpenSSH hosts on this machine: an sshd on loopback (or in a network
namespace) with its own keys. The tests use them as SSH devices, and the
emulated Raspberry Pi is served through one.

FACTS.md: sshd re-executes itself from /, so every path in its config and on
its command line is absolute; it needs /run/sshd, UsePAM no and StrictModes no
to run as a test host.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
TEST_RANGE = "10.231.0.0/16"  # addresses of the namespace hosts the tests make


def sshd_unavailable_reason() -> str | None:
    if not Path(SSHD).is_file():
        return "OpenSSH sshd is not installed (apt-get install openssh-server; .ci/run does)"
    if os.geteuid() != 0:
        return "a test sshd host needs root here (it logs in as the current user, /run/sshd must exist)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    if path.is_file():  # a host that is started again keeps its keys, so known_hosts stays valid
        return path
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgebench-test", "-f", str(path)], check=True)
    return path


@dataclass
class SshHost:
    folder: Path
    address: str
    port: int
    client_key: Path
    host_key: Path
    process: subprocess.Popen | None = None

    @property
    def known_hosts_line(self) -> str:
        key_type, key_data = Path(f"{self.host_key}.pub").read_text().split()[:2]
        name = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{name} {key_type} {key_data}\n"

    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-lf", f"{self.host_key}.pub"], capture_output=True, text=True).stdout
        return out.split()[1]  # SHA256:...

    def start(self, netns: str | None = None) -> SshHost:
        if netns is None:
            # Otherwise an old daemon on the port would answer the readiness check below.
            with socket.socket() as probe:
                try:
                    probe.bind((self.address, self.port))
                except OSError:
                    raise RuntimeError(f"{self.address}:{self.port} is already in use") from None
        config = self.folder / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress {self.address}\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.folder / 'authorized_keys'}\nPidFile {self.folder / 'sshd.pid'}\n"
            "UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
            "MaxStartups 100\nMaxSessions 100\nLogLevel VERBOSE\n"
            # Sessions get their own HOME: bash then reads no ~/.bashrc of this machine's user (a pyenv
            # init there rehashes under a lock, and a session killed mid-rehash, as the tests kill boards,
            # would leave that lock behind and make every later command on this machine wait 60 s).
            f"SetEnv HOME={self.folder / 'home'}\n"
        )
        (self.folder / "home").mkdir(exist_ok=True)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        command = [SSHD, "-D", "-f", str(config), "-E", str(self.folder / "sshd.log")]
        if netns:
            command = ["ip", "netns", "exec", netns, *command]
        self.process = subprocess.Popen(command)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.folder / 'sshd.log').read_text()[-2000:]}")
            try:
                if netns:
                    connect = f"import socket; socket.create_connection(('{self.address}', {self.port}), 1)"
                    probe = ["ip", "netns", "exec", netns, sys.executable, "-c", connect]
                    subprocess.run(probe, check=True, capture_output=True)
                else:
                    socket.create_connection((self.address, self.port), 1).close()
                return self
            except (OSError, subprocess.CalledProcessError):
                time.sleep(0.1)
        raise RuntimeError("sshd did not start listening")

    def stop(self) -> None:
        """Stop the daemon and every session it forked, as a board losing power would."""
        if self.process is None:
            return
        import psutil

        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for process in children:
            with contextlib.suppress(psutil.NoSuchProcess):  # a session may end on its own meanwhile
                process.kill()
        self.process.kill()
        self.process.wait()
        psutil.wait_procs(children, timeout=10)
        self.process = None

    def device_file(self, path: Path, **fields) -> Path:
        """A devices/<name>.toml for this host; fields override the defaults."""
        values = {
            "transport": "ssh",
            "host": self.address,
            "port": self.port,
            "user": getpass.getuser(),
            "identity_file": str(self.client_key),
            "known_hosts": str(self.folder / "known_hosts"),
            "python": sys.executable,
            "workdir": str(self.folder / "remote-workdir"),
            "connect_timeout": 5,
            "description": "test sshd on loopback",
        }
        values.update(fields)
        lines = []
        for key, value in values.items():
            if isinstance(value, str):
                lines.append(f"{key} = {_toml_string(value)}")
            else:
                lines.append(f"{key} = {str(value).lower() if isinstance(value, bool) else value}")
        path.write_text("\n".join(lines) + "\n")
        return path


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_host(folder: Path, address: str = "127.0.0.1", port: int | None = None) -> SshHost:
    folder.mkdir(parents=True, exist_ok=True)
    host = SshHost(
        folder=folder,
        address=address,
        port=port or free_port(),
        client_key=keygen(folder / "client_ed25519"),
        host_key=keygen(folder / "host_ed25519"),
    )
    shutil.copy(f"{host.client_key}.pub", folder / "authorized_keys")
    (folder / "known_hosts").write_text(host.known_hosts_line)
    return host


def netns_unavailable_reason() -> str | None:
    reason = sshd_unavailable_reason()
    if reason:
        return reason
    if not shutil.which("ip"):
        return "iproute2 is not installed (apt-get install iproute2; .ci/run does)"
    name = f"ebprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create network namespaces here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    return None


@dataclass
class NamespaceHost:
    """A 'board' with its own address: a network namespace joined to the host by a veth pair."""

    namespace: str
    host_side: str
    device_side: str
    address: str
    ssh: SshHost

    # The board's end goes down, not the host's: the host keeps its route to the
    # board (packets die at the dead link) instead of sending them elsewhere.
    def cut_link(self) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.namespace, "ip", "link", "set", self.device_side, "down"], check=True
        )

    def restore_link(self) -> None:
        subprocess.run(["ip", "netns", "exec", self.namespace, "ip", "link", "set", self.device_side, "up"], check=True)


def make_namespace_host(folder: Path, index: int) -> NamespaceHost:
    tag = f"{os.getpid() % 10000}{index}"
    namespace, host_side, device_side = f"ebdev{tag}", f"ebh{tag}", f"ebd{tag}"
    subnet = f"10.231.{(os.getpid() + index) % 250}"  # inside TEST_RANGE
    commands = [
        # Safety net: nothing for the test range ever leaves this machine, whatever link is down.
        ["ip", "route", "replace", "blackhole", f"{TEST_RANGE}"],
        ["ip", "netns", "add", namespace],
        ["ip", "link", "add", host_side, "type", "veth", "peer", "name", device_side],
        ["ip", "link", "set", device_side, "netns", namespace],
        ["ip", "addr", "add", f"{subnet}.1/24", "dev", host_side],
        ["ip", "link", "set", host_side, "up"],
        ["ip", "netns", "exec", namespace, "ip", "addr", "add", f"{subnet}.2/24", "dev", device_side],
        ["ip", "netns", "exec", namespace, "ip", "link", "set", device_side, "up"],
        ["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"],
    ]
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    ssh = make_host(folder, address=f"{subnet}.2", port=22).start(netns=namespace)
    return NamespaceHost(namespace, host_side, device_side, f"{subnet}.2", ssh)


def remove_namespace_host(host: NamespaceHost) -> None:
    host.ssh.stop()
    subprocess.run(["ip", "link", "delete", host.host_side], capture_output=True)
    subprocess.run(["ip", "netns", "delete", host.namespace], capture_output=True)
