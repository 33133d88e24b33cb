"""SSH devices (Raspberry Pi boards, Termux phones) through paramiko.

Host keys are verified against known_hosts files (the user's and the device
file's); an unknown key is refused with its fingerprint unless the caller asked
to trust new hosts, and a changed key is always refused. Every remote argument
is shell-quoted. Files are pushed over SFTP into <workdir>/by-sha256/, so what
the device already has is never sent again, and an upload only gets its final
name after its size checked out.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import logging
import os
import posixpath
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from edgebench.transport.base import (
    CommandResult,
    ConnectionLost,
    DeviceError,
    DiskFull,
    Endpoint,
    Stalled,
    StderrTail,
    Transport,
    Unreachable,
)
from edgebench.transport.options import SshOptions

KEEPALIVE_SECONDS = 15
# Opening a channel, starting a command, one SFTP request or packet: each gets this long on a live board.
STEP_SECONDS = 30.0

# paramiko logs handshake failures from its own thread; with no handler,
# logging's last resort would print them over our one-line error.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False
USER_KNOWN_HOSTS = Path("~/.ssh/known_hosts").expanduser()
USER_SSH_CONFIG = Path("~/.ssh/config").expanduser()

# Run argv ("$@") in the background and kill it when the host goes away: the
# watcher reads the channel's stdin (kept as fd 3, since POSIX gives background
# jobs /dev/null) and gets EOF when the connection closes or the host gives up.
_WATCHDOG = (
    'exec 3<&0; "$@" 3<&- & pid=$!; '
    '(cat <&3 >/dev/null 2>&1; kill -TERM "$pid" 2>/dev/null) >/dev/null 2>&1 & '
    'exec 3<&-; wait "$pid"'
)


# What an SFTP call raises when the request fails or the connection under it dies.
_SFTP_FAILURES = (OSError, EOFError, paramiko.SSHException)


def key_is_encrypted(path: Path) -> bool:
    """Whether a private key file needs a passphrase: a PEM key with an ENCRYPTED header, or an OpenSSH key whose
    cipher is not "none" (the first field after the "openssh-key-v1" magic)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    if "ENCRYPTED" in text.split("\n\n", 1)[0] or "BEGIN ENCRYPTED PRIVATE KEY" in text:
        return True
    if "BEGIN OPENSSH PRIVATE KEY" not in text:
        return False
    body = "".join(line for line in text.splitlines() if line and not line.startswith("-----"))
    try:
        raw = base64.b64decode(body)
    except ValueError:
        return False
    magic = b"openssh-key-v1\0"
    if not raw.startswith(magic) or len(raw) < len(magic) + 4:
        return False
    length = int.from_bytes(raw[len(magic) : len(magic) + 4], "big")
    return raw[len(magic) + 4 : len(magic) + 4 + length] != b"none"


def _refuse_encrypted_keys(target, user_at: str) -> None:
    """paramiko says "authentication failed", or "encountered RSA key, expected OPENSSH key" for an encrypted PEM
    key: neither tells the user that edgebench never asks for passphrases."""
    encrypted = [path for path in target.identity_files if key_is_encrypted(Path(path))]
    if encrypted:
        raise DeviceError(
            f"cannot log in to {user_at}: the key {encrypted[0]} is encrypted (passphrase-protected) and no ssh-agent "
            f"offered it; run 'ssh-add {encrypted[0]}' (edgebench uses the agent at SSH_AUTH_SOCK) or give the device "
            "an unencrypted deploy key"
        ) from None


class HostKeyError(DeviceError):
    """Unknown or changed host key."""


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _VerifyHostKey(paramiko.MissingHostKeyPolicy):
    """Unknown host: refuse with the fingerprint, or record it when trusting new hosts was asked for."""

    def __init__(self, endpoint: Endpoint, trust_new_host: bool, record_in: Path):
        self.endpoint = endpoint
        self.trust_new_host = trust_new_host
        self.record_in = record_in
        self.recorded: str | None = None

    def missing_host_key(self, client, hostname, key):
        if not self.trust_new_host:
            raise HostKeyError(
                f"unknown host key for {hostname} ({fingerprint(key)}); if that is the device's key, run "
                f"'edgebench devices trust {self.endpoint.name}' or pass --trust-new-host"
            )
        self.record_in.parent.mkdir(parents=True, exist_ok=True)
        with open(self.record_in, "a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        os.chmod(self.record_in, 0o600)
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.recorded = fingerprint(key)


@dataclass(frozen=True)
class SshTarget:
    """Where an SSH device really is, after ~/.ssh/config: the device file's keys win over the config's."""

    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    proxy_jump: str | None


def resolve_target(options: SshOptions, config_path: Path | None = None) -> SshTarget:
    """The device's [ssh] section, completed by ~/.ssh/config (aliases, User, Port, IdentityFile, ProxyJump)."""
    path = config_path or options.ssh_config or (USER_SSH_CONFIG if USER_SSH_CONFIG.is_file() else None)
    found: dict = {}
    if path is not None:
        try:
            found = paramiko.SSHConfig.from_path(str(path)).lookup(options.host)
        except FileNotFoundError:
            raise DeviceError(f"ssh_config {path} does not exist") from None
        except (OSError, paramiko.SSHException, ValueError) as error:
            raise DeviceError(f"cannot read ssh config {path}: {error}") from None
    identities = (str(options.identity_file),) if options.identity_file else ()
    if not identities:
        identities = tuple(os.path.expanduser(p) for p in found.get("identityfile", []))
    jump = options.proxy_jump or found.get("proxyjump")
    return SshTarget(
        hostname=found.get("hostname", options.host),
        port=options.port or int(found.get("port", 22)),
        user=options.user or found.get("user") or getpass.getuser(),
        identity_files=identities,
        proxy_jump=None if not jump or jump.lower() == "none" else jump.split(",")[0].strip(),
    )


def _parse_jump(spec: str) -> SshOptions:
    user, _, rest = spec.rpartition("@")
    host, _, port = rest.partition(":")
    return SshOptions(host=host, user=user or None, port=int(port) if port else None)


class SshTransport(Transport):
    def __init__(self, endpoint: Endpoint, options: SshOptions, *, trust_new_host: bool = False):
        if not isinstance(options, SshOptions) or not options.host:
            raise DeviceError(f"device {endpoint.name!r} has no SSH host")
        self.endpoint = endpoint
        self.options = options
        self.target = resolve_target(options)
        self.trust_new_host = trust_new_host
        self.connect_timeout = options.connect_timeout
        self.bytes_pushed = 0
        self.files_pushed = 0
        self.trusted_now: str | None = None
        self._client: paramiko.SSHClient | None = None
        self._jump: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._workdir: str | None = None

    # ---- connection ---------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.target.user}@{self.target.hostname}:{self.target.port}"

    @property
    def known_hosts(self) -> Path:
        """Where an unknown key is recorded when trusting new hosts was asked for."""
        return self.options.known_hosts or USER_KNOWN_HOSTS

    def connect(self) -> paramiko.SSHClient:
        if self._client is not None and self._client.get_transport() and self._client.get_transport().is_active():
            return self._client
        self._close_quietly()
        sock = None
        if self.target.proxy_jump:
            # ProxyJump: a verified SSH connection to the bastion, then a direct-tcpip channel
            # through it to the board, itself verified against known_hosts like any other.
            jump_target = resolve_target(_parse_jump(self.target.proxy_jump), self.options.ssh_config)
            self._jump = self._open_client(jump_target, None, f"jump host {self.target.proxy_jump}")
            try:
                sock = self._jump.get_transport().open_channel(
                    "direct-tcpip", (self.target.hostname, self.target.port), ("127.0.0.1", 0),
                    timeout=self.connect_timeout,
                )  # fmt: skip
            except (paramiko.SSHException, OSError) as error:
                self._close_quietly()
                raise Unreachable(
                    f"jump host {self.target.proxy_jump} cannot reach {self.target.hostname}:{self.target.port}: "
                    f"{error or type(error).__name__}"
                ) from None
        self._client = self._open_client(self.target, sock, None)
        return self._client

    def _open_client(self, target: SshTarget, sock, role: str | None) -> paramiko.SSHClient:
        device = self.endpoint
        client = paramiko.SSHClient()
        record_in = self.known_hosts
        for path in {USER_KNOWN_HOSTS, record_in}:
            if path.is_file():
                try:
                    client.load_host_keys(str(path)) if path == record_in else client.load_system_host_keys(str(path))
                except (OSError, paramiko.SSHException) as error:
                    raise HostKeyError(f"cannot read known_hosts {path}: {error}") from None
        policy = _VerifyHostKey(device, self.trust_new_host, record_in)
        client.set_missing_host_key_policy(policy)
        for identity in target.identity_files:
            if not Path(identity).is_file():
                raise DeviceError(f"device {device.name!r}: identity_file {identity} does not exist")
        where = f"{target.hostname}:{target.port}" + (f" ({role})" if role else "")
        user_at = f"{target.user}@{target.hostname}:{target.port}"
        try:
            client.connect(
                target.hostname,
                port=target.port,
                username=target.user,
                key_filename=list(target.identity_files) or None,
                look_for_keys=not target.identity_files,
                # The agent too, as OpenSSH does without IdentitiesOnly: it is how people hold encrypted keys.
                allow_agent=True,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                sock=sock,
            )
        except HostKeyError:
            client.close()
            raise
        except paramiko.BadHostKeyException as error:
            client.close()
            raise HostKeyError(
                f"HOST KEY CHANGED for {where}: known_hosts has {fingerprint(error.expected_key)}, the host sent "
                f"{fingerprint(error.key)}; refusing to connect. If the device was reinstalled, remove its line "
                f"from {record_in} and trust it again"
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            _refuse_encrypted_keys(target, user_at)
            key = f"key {', '.join(target.identity_files)}" if target.identity_files else "the default keys"
            raise DeviceError(f"authentication failed for {user_at} with {key} and the ssh-agent's keys") from None
        except socket.gaierror:
            client.close()
            raise Unreachable(f"cannot resolve host name {target.hostname!r} of device {device.name!r}") from None
        except TimeoutError:
            client.close()
            raise Unreachable(f"timed out connecting to {where} after {self.connect_timeout:g}s") from None
        except paramiko.ssh_exception.NoValidConnectionsError as error:
            client.close()
            refused = all(isinstance(e, ConnectionRefusedError) for e in error.errors.values())
            reason = "connection refused" if refused else str(error)
            raise Unreachable(f"cannot connect to {where}: {reason}") from None
        except (paramiko.SSHException, EOFError, OSError) as error:
            client.close()
            _refuse_encrypted_keys(target, user_at)  # an encrypted PEM key: "encountered RSA key, expected OPENSSH"
            message = str(error) or type(error).__name__
            # A silent peer fails in paramiko's reader thread as a banner error, or the
            # handshake then finds "No existing session"; both mean no SSH came back.
            if "banner" in message.lower() or "no existing session" in message.lower():
                message = f"it accepted the connection but did not speak SSH within {self.connect_timeout:g}s"
            raise Unreachable(f"cannot connect to {where}: {message}") from None
        client.get_transport().set_keepalive(KEEPALIVE_SECONDS)
        self.trusted_now = self.trusted_now or policy.recorded
        return client

    def close(self) -> None:
        self._close_quietly()

    def _close_quietly(self) -> None:
        for thing in (self._sftp, self._client, self._jump):
            if thing is not None:
                with contextlib.suppress(Exception):  # closing a dead connection may raise anything
                    thing.close()
        self._sftp = None
        self._client = None
        self._jump = None

    # ---- the contract ---------------------------------------------------------

    def python(self) -> list[str]:
        # Arguments are quoted, so the remote shell would not expand a leading ~.
        return [self.expand_home(word) for word in shlex.split(self.endpoint.python)]

    def expand_home(self, path: str) -> str:
        if path == "~" or path.startswith("~/"):
            # SFTP sessions start in the home directory; normalize(".") names it.
            try:
                home = self._sftp_client().normalize(".")
            except _SFTP_FAILURES as error:
                self._close_quietly()
                raise ConnectionLost(f"SFTP on {self.address} failed: {error or type(error).__name__}") from None
            return posixpath.join(home, path[2:])
        return path

    def workdir(self) -> str:
        if self._workdir is None:
            workdir = self.expand_home(self.endpoint.workdir)
            self._run_checked(["mkdir", "-p", "--", posixpath.join(workdir, "by-sha256")], "create the workdir")
            self._workdir = workdir
        return self._workdir

    def lease_dir(self) -> str:
        return self.workdir()

    def stage(self, local_path: Path, sha256: str) -> str:
        local_path = Path(local_path)
        folder = posixpath.join(self.workdir(), "by-sha256", sha256)
        remote = posixpath.join(folder, local_path.name)
        size = local_path.stat().st_size
        sftp = self._sftp_client()
        try:
            if sftp.stat(remote).st_size == size:
                return remote  # already there
        except FileNotFoundError:
            pass
        except _SFTP_FAILURES as error:
            self._close_quietly()
            raise ConnectionLost(f"SFTP on {self.address} failed: {error or type(error).__name__}") from None
        with contextlib.suppress(OSError):  # by-sha256/ exists (workdir()); this folder may too
            sftp.mkdir(folder)
        partial = f"{remote}.part-{secrets.token_hex(4)}"
        try:
            sftp.put(str(local_path), partial, confirm=False)
            if sftp.stat(partial).st_size != size:
                raise OSError(f"uploaded {sftp.stat(partial).st_size} of {size} bytes")
            sftp.posix_rename(partial, remote)
        except _SFTP_FAILURES as error:
            if not self._alive():  # the board went away mid-transfer (paramiko says "connection dropped")
                self._close_quietly()
                why = error or type(error).__name__
                raise ConnectionLost(
                    f"connection to {self.address} lost while pushing {local_path.name}: {why}"
                ) from None
            self._remove_quietly(partial)
            free = self._free_bytes(folder)
            if free is not None and free < size:
                raise DiskFull(
                    f"device {self.endpoint.name!r} is out of disk space in {folder}: {size:,} bytes needed, "
                    f"{free:,} free"
                ) from None
            raise DeviceError(f"cannot push {local_path.name} to {self.address}:{remote}: {error}") from None
        self.bytes_pushed += size
        self.files_pushed += 1
        return remote

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None,
        on_stderr_line: Callable[[str], None] | None = None,
        stall_timeout: float | None = None,
    ) -> CommandResult:
        command = "sh -c " + shlex.join([_WATCHDOG, "edgebench-agent", *argv])
        client = self.connect()
        try:
            channel = client.get_transport().open_session(timeout=STEP_SECONDS)
            self._exec_with_deadline(channel, command)
        except (paramiko.SSHException, EOFError, OSError) as error:
            self._close_quietly()
            raise ConnectionLost(f"connection to {self.address} lost: {error or type(error).__name__}") from None
        tail = StderrTail(on_stderr_line)
        stdout, pending = [], ""
        deadline = time.monotonic() + timeout if timeout else None
        try:
            while True:
                self.check_cancelled()
                if channel.recv_stderr_ready():
                    pending += channel.recv_stderr(65536).decode(errors="replace")
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        tail.feed(line)
                    tail.last_activity = time.monotonic()
                    continue
                if channel.recv_ready():
                    stdout.append(channel.recv(1 << 20))
                    tail.last_activity = time.monotonic()
                    continue
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                if channel.closed or not client.get_transport().is_active():
                    self._close_quietly()
                    raise ConnectionLost(f"connection to {self.address} lost while the agent was running")
                if deadline and time.monotonic() > deadline:
                    channel.close()  # EOF on the watchdog's stdin: it kills the agent
                    return CommandResult(None, b"".join(stdout).decode(errors="replace"), tuple(tail.lines), True)
                if stall_timeout and time.monotonic() - tail.last_activity > stall_timeout:
                    # Keepalives do not notice a peer that is connected but silent. Drop the whole
                    # connection: the next command starts on a fresh one (or finds the board gone).
                    self._close_quietly()
                    raise Stalled(
                        f"no output from the agent on {self.address} for {stall_timeout:g}s (stalled); "
                        "the connection was dropped"
                    )
                time.sleep(0.01)
            # Drain what arrived with the exit status.
            while channel.recv_ready():
                stdout.append(channel.recv(1 << 20))
            if pending:
                tail.feed(pending)
            code = channel.recv_exit_status()
            if code == -1:
                # paramiko's value for "closed without an exit status". The watchdog shell
                # always exits normally (a killed agent becomes 128+N), so the link died.
                self._close_quietly()
                raise ConnectionLost(f"connection to {self.address} lost while the agent was running")
        except BaseException:
            channel.close()  # Ctrl-C included: the watchdog ends the agent on the device
            raise
        channel.close()
        return CommandResult(code, b"".join(stdout).decode(errors="replace"), tuple(tail.lines))

    # ---- helpers -------------------------------------------------------------

    def _exec_with_deadline(self, channel: paramiko.Channel, command: str) -> None:
        """paramiko's exec_command waits for the server's reply with no deadline; a frozen session would
        hang the run there forever. Wait for it in a helper thread, at most STEP_SECONDS."""
        done, failure = threading.Event(), []

        def start() -> None:
            try:
                channel.exec_command(command)
            except BaseException as error:  # handed to the caller's thread
                failure.append(error)
            finally:
                done.set()

        threading.Thread(target=start, name="edgebench-ssh-exec", daemon=True).start()
        if not done.wait(STEP_SECONDS):
            self._close_quietly()  # wakes and ends the helper thread
            raise Stalled(f"{self.address} did not start a command within {STEP_SECONDS:g}s (stalled)")
        if failure:
            raise failure[0]

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None or self._client is None or not self._client.get_transport().is_active():
            client = self.connect()
            try:
                self._sftp = client.open_sftp()
                # Every SFTP request and transfer packet gets a deadline: a frozen board raises
                # socket.timeout (an OSError) instead of hanging the run.
                self._sftp.get_channel().settimeout(STEP_SECONDS)
            except (paramiko.SSHException, EOFError, OSError) as error:
                raise DeviceError(f"SFTP is not available on {self.address}: {error}") from None
        return self._sftp

    def _run_checked(self, argv: Sequence[str], what: str) -> str:
        result = self.run(argv, timeout=60)
        if result.exit_code != 0:
            raise DeviceError(f"cannot {what} on {self.address}: {' | '.join(result.stderr_tail) or result.exit_code}")
        return result.stdout

    def _alive(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return bool(transport and transport.is_active())

    def _remove_quietly(self, remote: str) -> None:
        with contextlib.suppress(*_SFTP_FAILURES, DeviceError):
            self._sftp_client().remove(remote)

    def _free_bytes(self, folder: str) -> int | None:
        try:
            result = self.run(["df", "-Pk", "--", folder], timeout=30)
            return int(result.stdout.strip().splitlines()[-1].split()[3]) * 1024
        except (DeviceError, IndexError, ValueError):
            return None
