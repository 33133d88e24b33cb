"""Device inventory: devices/<name>.toml files -> frozen, validated Device records.

Every error names the file and the key, so a typo in a device farm's
inventory is found at once rather than at 3 a.m. on the board.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.errors import EdgebenchError

TRANSPORTS = ("local", "ssh")


class InventoryError(EdgebenchError):
    """A device file is missing, unreadable or invalid, or a device name is unknown."""


@dataclass(frozen=True)
class Device:
    name: str
    transport: str
    source: Path | None  # the TOML file it came from
    description: str = ""
    host: str | None = None
    port: int = 22
    user: str | None = None
    identity_file: Path | None = None
    known_hosts: Path | None = None
    python: str = "python3"
    workdir: str = "~/.cache/edgebench"
    threads: int = 1
    cpus: tuple[int, ...] = ()
    delegate: str = "xnnpack"
    emulated: bool = False
    connect_timeout: float = 10.0
    tags: tuple[str, ...] = field(default=())


# key -> (python type(s), required for these transports)
_FIELDS = {
    "transport": (str, TRANSPORTS),
    "description": (str, ()),
    "host": (str, ("ssh",)),
    "port": (int, ()),
    "user": (str, ()),
    "identity_file": (str, ()),
    "known_hosts": (str, ()),
    "python": (str, ()),
    "workdir": (str, ()),
    "threads": (int, ()),
    "cpus": (list, ()),
    "delegate": (str, ()),
    "emulated": (bool, ()),
    "connect_timeout": ((int, float), ()),
    "tags": (list, ()),
}


def default_devices_dir() -> Path:
    """$EDGEBENCH_DEVICES, else ./devices, else the devices/ folder beside the package (a checkout)."""
    if "EDGEBENCH_DEVICES" in os.environ:
        return Path(os.environ["EDGEBENCH_DEVICES"])
    here = Path.cwd() / "devices"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "devices"


def load_device_file(path: Path, name: str | None = None) -> Device:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InventoryError(f"device file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InventoryError(f"{path}: cannot read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise InventoryError(f"{path}: invalid TOML: {error}") from None
    return _validate(data, path, name or path.stem)


# A device's name becomes a folder under results/: nothing that could climb out of it or hide there.
DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _validate(data: dict, path: Path, name: str) -> Device:
    if not DEVICE_NAME.fullmatch(name):
        raise InventoryError(
            f"{path}: the device name {name!r} (the file name without .toml) must be letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise InventoryError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_FIELDS))})")
    if "transport" not in data:
        raise InventoryError(f"{path}: missing key 'transport' (one of {', '.join(TRANSPORTS)})")
    for key, value in data.items():
        expected, _ = _FIELDS[key]
        # bool is an int in Python; a port of `true` is still wrong.
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            kind = " or ".join(t.__name__ for t in expected) if isinstance(expected, tuple) else expected.__name__
            raise InventoryError(f"{path}: key {key!r} must be {kind}, got {value!r}")
    transport = data["transport"]
    if transport not in TRANSPORTS:
        raise InventoryError(f"{path}: key 'transport' must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
    for key, (_, required_for) in _FIELDS.items():
        if transport in required_for and key != "transport" and not data.get(key):
            raise InventoryError(f"{path}: key {key!r} is required for transport {transport!r}")
    if not 1 <= data.get("port", 22) <= 65535:
        raise InventoryError(f"{path}: key 'port' must be 1-65535, got {data['port']}")
    if data.get("threads", 1) < 1:
        raise InventoryError(f"{path}: key 'threads' must be at least 1, got {data['threads']}")
    if data.get("delegate", "xnnpack") not in ("xnnpack", "none"):
        raise InventoryError(f"{path}: key 'delegate' must be 'xnnpack' or 'none', got {data['delegate']!r}")
    cpus = data.get("cpus", [])
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cpus):
        raise InventoryError(f"{path}: key 'cpus' must be a list of CPU numbers, got {cpus!r}")
    if not all(isinstance(t, str) for t in data.get("tags", [])):
        raise InventoryError(f"{path}: key 'tags' must be a list of strings")

    def expand(key):
        return Path(data[key]).expanduser() if data.get(key) else None

    return Device(
        name=name,
        transport=transport,
        source=path,
        description=data.get("description", ""),
        host=data.get("host"),
        port=data.get("port", 22),
        user=data.get("user"),
        identity_file=expand("identity_file"),
        known_hosts=expand("known_hosts"),
        python=data.get("python", "python3"),
        workdir=data.get("workdir", "~/.cache/edgebench"),
        threads=data.get("threads", 1),
        cpus=tuple(cpus),
        delegate=data.get("delegate", "xnnpack"),
        emulated=data.get("emulated", False),
        connect_timeout=float(data.get("connect_timeout", 10.0)),
        tags=tuple(data.get("tags", [])),
    )


def list_devices(devices_dir: Path | None = None) -> list[Device]:
    folder = devices_dir or default_devices_dir()
    return [load_device_file(path) for path in sorted(Path(folder).glob("*.toml"))]


def resolve_device(spec: str, devices_dir: Path | None = None) -> Device:
    """A device name from the inventory, or a path to a .toml file."""
    if spec.endswith(".toml") or os.sep in spec:
        return load_device_file(Path(spec))
    folder = devices_dir or default_devices_dir()
    path = Path(folder) / f"{spec}.toml"
    if path.is_file():
        return load_device_file(path)
    if spec == "local":  # always available, even outside a checkout
        return Device(name="local", transport="local", source=None, description="this machine")
    known = ", ".join(p.stem for p in sorted(Path(folder).glob("*.toml"))) or "none"
    raise InventoryError(f"unknown device {spec!r}; known in {folder}: {known}")
