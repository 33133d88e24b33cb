"""Each transport's own section of a device file, declared and validated by the transport's kind.

A device file has the keys every device shares (python, threads, tags, ...) and one
section for how it is reached:

    transport = "ssh"
    [ssh]
    host = "pi4.lab"        # or an alias from ~/.ssh/config
    user = "pi"

The registry below maps a transport's name to its options class; adding a transport
(adb) adds a class here and a module beside this one. Older flat files, with the SSH
keys at the top level, are still read: those keys are moved into the section.

No heavy imports here: the inventory reads device files without paramiko.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgebench.core.errors import EdgebenchError


class OptionsError(EdgebenchError):
    """A transport section is invalid; the message names the key (the inventory adds the file)."""


def _type_name(expected) -> str:
    return " or ".join(t.__name__ for t in expected) if isinstance(expected, tuple) else expected.__name__


def check_types(section: str, data: dict, fields: dict) -> None:
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise OptionsError(f"unknown key '{section}{unknown[0]}' (known: {', '.join(sorted(fields))})")
    for key, value in data.items():
        expected = fields[key]
        # bool is an int in Python; a port of `true` is still wrong.
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise OptionsError(f"key '{section}{key}' must be {_type_name(expected)}, got {value!r}")


@dataclass(frozen=True)
class LocalOptions:
    """This machine: nothing to configure."""

    FIELDS: ClassVar[dict] = {}

    @classmethod
    def from_table(cls, data: dict) -> LocalOptions:
        check_types("local.", data, cls.FIELDS)
        return cls()

    @property
    def address(self) -> str | None:
        return None

    def lock_key(self) -> str:
        return "local"


@dataclass(frozen=True)
class SshOptions:
    host: str
    port: int | None = None  # None: ~/.ssh/config's, else 22
    user: str | None = None  # None: ~/.ssh/config's, else the local user
    identity_file: Path | None = None
    known_hosts: Path | None = None
    connect_timeout: float = 10.0
    ssh_config: Path | None = None  # None: ~/.ssh/config when it exists; aliases, users, ports, ProxyJump
    proxy_jump: str | None = None  # user@host:port of a bastion; overrides ~/.ssh/config's ProxyJump

    FIELDS: ClassVar[dict] = {
        "host": str,
        "port": int,
        "user": str,
        "identity_file": str,
        "known_hosts": str,
        "connect_timeout": (int, float),
        "ssh_config": str,
        "proxy_jump": str,
    }

    @classmethod
    def from_table(cls, data: dict) -> SshOptions:
        check_types("ssh.", data, cls.FIELDS)
        if not data.get("host"):
            raise OptionsError("key 'ssh.host' is required for transport 'ssh'")
        if "port" in data and not 1 <= data["port"] <= 65535:
            raise OptionsError(f"key 'ssh.port' must be 1-65535, got {data['port']}")
        if not data.get("connect_timeout", 10.0) > 0:
            raise OptionsError(f"key 'ssh.connect_timeout' must be more than 0, got {data['connect_timeout']}")
        if data.get("proxy_jump") and not re.fullmatch(r"(?:[^@\s]+@)?[^@:\s]+(?::\d{1,5})?", data["proxy_jump"]):
            raise OptionsError(f"key 'ssh.proxy_jump' must look like user@host:port, got {data['proxy_jump']!r}")

        def path(key):
            return Path(data[key]).expanduser() if data.get(key) else None

        return cls(
            host=data["host"],
            port=data.get("port"),
            user=data.get("user"),
            identity_file=path("identity_file"),
            known_hosts=path("known_hosts"),
            connect_timeout=float(data.get("connect_timeout", 10.0)),
            ssh_config=path("ssh_config"),
            proxy_jump=data.get("proxy_jump"),
        )

    @property
    def address(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}{':' + str(self.port) if self.port else ''}"

    def lock_key(self) -> str:
        """The board, not the file: two files naming one board share a lock."""
        return f"ssh-{self.user or ''}@{self.host}-{self.port or 22}"


@dataclass(frozen=True)
class AdbOptions:
    """A phone reached with the stock `adb` client: by USB serial, or host:port for adb over TCP."""

    serial: str
    adb: str = "adb"  # the client binary: a name on PATH or a path
    connect_timeout: float = 15.0  # adb connect / get-state
    command_timeout: float = 60.0  # every short shell command (facts, sha256, lease)
    push_rate_mb_s: float = 5.0  # the slowest push rate expected: a push's deadline grows with the file

    FIELDS: ClassVar[dict] = {
        "serial": str,
        "adb": str,
        "connect_timeout": (int, float),
        "command_timeout": (int, float),
        "push_rate_mb_s": (int, float),
    }

    @classmethod
    def from_table(cls, data: dict) -> AdbOptions:
        check_types("adb.", data, cls.FIELDS)
        if not data.get("serial"):
            raise OptionsError("key 'adb.serial' is required for transport 'adb' (see `adb devices`, or host:port)")
        if not re.fullmatch(r"[A-Za-z0-9._:\[\]-]+", data["serial"]):
            raise OptionsError(f"key 'adb.serial' must be a serial or host:port, got {data['serial']!r}")
        for key in ("connect_timeout", "command_timeout", "push_rate_mb_s"):
            if key in data and not data[key] > 0:
                raise OptionsError(f"key 'adb.{key}' must be more than 0, got {data[key]!r}")
        return cls(**{k: float(v) if k in ("connect_timeout", "command_timeout", "push_rate_mb_s") else v
                      for k, v in data.items()})  # fmt: skip

    @property
    def over_tcp(self) -> bool:
        return bool(re.fullmatch(r".+:\d{1,5}", self.serial))

    @property
    def address(self) -> str:
        return f"adb:{self.serial}"

    def lock_key(self) -> str:
        return f"adb-{self.serial}"


TRANSPORT_OPTIONS: dict[str, type] = {"local": LocalOptions, "ssh": SshOptions, "adb": AdbOptions}
# Keys of the ssh section that older device files had at the top level.
LEGACY_FLAT_KEYS = {"ssh": ("host", "port", "user", "identity_file", "known_hosts", "connect_timeout")}
