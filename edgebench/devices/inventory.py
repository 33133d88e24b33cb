"""Device inventory: devices/<name>.toml files -> frozen, validated Device records.

Every error names the file and the key, so a typo in a device farm's
inventory is found at once rather than at 3 a.m. on the board.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.backends.benchmark_model import BenchmarkBinary
from edgebench.core.errors import EdgebenchError
from edgebench.core.fileio import read_toml
from edgebench.core.settings import SettingError, device_settings, read_table
from edgebench.transport.options import (
    LEGACY_FLAT_KEYS,
    TRANSPORT_OPTIONS,
    AdbOptions,
    LocalOptions,
    OptionsError,
    SshOptions,
    check_types,
)

TRANSPORTS = tuple(TRANSPORT_OPTIONS)


class InventoryError(EdgebenchError):
    """A device file is missing, unreadable or invalid, or a device name is unknown."""


@dataclass(frozen=True)
class Thermal:
    """The [thermal] section: the health ceiling and the cool-down between measurements."""

    max_temperature_c: float | None = None  # a hotter device fails its health check
    cooldown_seconds: float = 0.0  # a fixed pause before every measurement but the first
    cooldown_below_c: float | None = None  # or wait until it is this cool ...
    cooldown_max_seconds: float = 300.0  # ... for at most this long


BACKENDS = ("python-agent", "benchmark_model")


@dataclass(frozen=True)
class Device:
    name: str
    transport: str
    source: Path | None  # the TOML file it came from
    description: str = ""
    python: str = "python3"
    workdir: str = "~/.cache/edgebench"
    settings: dict = field(default_factory=dict)  # the file's measurement defaults by name (core/settings.py)
    emulated: bool = False
    tags: tuple[str, ...] = field(default=())
    options: LocalOptions | SshOptions | AdbOptions = field(default_factory=LocalOptions)  # the transport's section
    thermal: Thermal = field(default_factory=Thermal)
    # What measures: the Python agent, or the native benchmark_model binary (a phone with no Python).
    backend: str = "python-agent"
    benchmark_model: BenchmarkBinary = field(default_factory=BenchmarkBinary)

    @property
    def address(self) -> str | None:
        """Where it is reached, for tables and run.json (None for this machine)."""
        return self.options.address


# Keys every device has, whatever its transport: key -> python type(s)
_FIELDS = {
    "transport": str,
    "description": str,
    "python": str,
    "workdir": str,
    "emulated": bool,
    "tags": list,
    "thermal": dict,
    "backend": str,
    "benchmark_model": dict,
}
_BENCHMARK_FIELDS = {"path": str, "device_path": str, "extra_flags": list, "version": str}
_THERMAL_FIELDS = {
    "max_temperature_c": (int, float),
    "cooldown_seconds": (int, float),
    "cooldown_below_c": (int, float),
    "cooldown_max_seconds": (int, float),
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
    return _validate(read_toml(path, InventoryError, "device file"), path, name or path.stem)


# A device's name becomes a folder under results/: nothing that could climb out of it or hide there.
DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


# Names the results folder uses beside the device folders (results/layout.py): a device named so would write its
# runs into the history index's path.
RESERVED_NAMES = re.compile(r"history\.sqlite.*", re.IGNORECASE)


def _validate(data: dict, path: Path, name: str) -> Device:
    if not DEVICE_NAME.fullmatch(name):
        raise InventoryError(
            f"{path}: the device name {name!r} (the file name without .toml) must be letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    if RESERVED_NAMES.fullmatch(name):
        raise InventoryError(f"{path}: the device name {name!r} is reserved (the results folder keeps its history "
                             "index under that name); rename the file")  # fmt: skip
    if "transport" not in data:
        raise InventoryError(f"{path}: missing key 'transport' (one of {', '.join(TRANSPORTS)})")
    transport = data["transport"]
    if transport not in TRANSPORTS:
        raise InventoryError(f"{path}: key 'transport' must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
    data = dict(data)
    section = data.pop(transport, {})
    if not isinstance(section, dict):
        raise InventoryError(f"{path}: [{transport}] must be a table of options")
    for key in LEGACY_FLAT_KEYS.get(transport, ()):
        if key in data:  # an older flat file: the key belongs to the transport's section
            if key in section:
                raise InventoryError(f"{path}: key {key!r} is given both at the top level and in [{transport}]")
            section[key] = data.pop(key)
    others = sorted(set(data) & (set(TRANSPORT_OPTIONS) - {transport}))
    if others:
        raise InventoryError(f"{path}: section [{others[0]}] does not apply to transport {transport!r}")
    defaults = {s.key: data.pop(s.key) for s in device_settings() if s.key in data}
    try:
        settings = read_table(defaults, "", device_settings())
    except SettingError as error:
        raise InventoryError(f"{path}: {error}") from None
    try:
        check_types("", data, _FIELDS | {s.key: object for s in device_settings()})  # those read above, by name
        check_types("thermal.", data.get("thermal", {}), _THERMAL_FIELDS)
        check_types("benchmark_model.", data.get("benchmark_model", {}), _BENCHMARK_FIELDS)
        options = TRANSPORT_OPTIONS[transport].from_table(section)
    except OptionsError as error:
        raise InventoryError(f"{path}: {error}") from None
    if not all(isinstance(t, str) for t in data.get("tags", [])):
        raise InventoryError(f"{path}: key 'tags' must be a list of strings")
    # A stock phone over ADB has no Python: its default is the native binary.
    backend = data.get("backend", "benchmark_model" if transport == "adb" else "python-agent")
    if backend not in BACKENDS:
        raise InventoryError(f"{path}: key 'backend' must be one of {', '.join(BACKENDS)}, got {backend!r}")
    binary = _benchmark_binary(data.get("benchmark_model", {}), path)
    if backend == "benchmark_model" and not (binary.path or binary.device_path):
        raise InventoryError(
            f"{path}: backend 'benchmark_model' needs [benchmark_model] path (a binary on this host, pushed) or "
            f"device_path (one on the device); `edgebench devices setup {name} --benchmark-binary FILE` sets it"
        )
    thermal = data.get("thermal", {})
    for key, value in thermal.items():
        if key != "max_temperature_c" and not value >= 0:
            raise InventoryError(f"{path}: key 'thermal.{key}' must be 0 or more, got {value!r}")
    return Device(
        name=name,
        transport=transport,
        source=path,
        description=data.get("description", ""),
        python=data.get("python", "python3"),
        workdir=data.get("workdir", "/data/local/tmp/edgebench" if transport == "adb" else "~/.cache/edgebench"),
        settings=settings,
        emulated=data.get("emulated", False),
        tags=tuple(data.get("tags", [])),
        options=options,
        thermal=Thermal(**{k: float(v) for k, v in thermal.items()}),
        backend=backend,
        benchmark_model=binary,
    )


def _benchmark_binary(section: dict, path: Path) -> BenchmarkBinary:
    flags = section.get("extra_flags", [])
    if not all(isinstance(f, str) and f.startswith("--") for f in flags):
        raise InventoryError(f"{path}: key 'benchmark_model.extra_flags' must be a list of '--flag=value' strings")
    host_path = None
    if section.get("path"):
        # Relative to the device file, so a farm's folder can carry its binaries.
        host_path = (path.parent / Path(section["path"]).expanduser()).resolve()
    return BenchmarkBinary(host_path, section.get("device_path"), tuple(flags), section.get("version"))


@dataclass(frozen=True)
class BrokenDevice:
    """A device file that does not load: named with its problem, never a reason to hide the others."""

    path: Path
    problem: str
    tags: tuple[str, ...] | None  # as the file says, where its TOML can still be read


def scan_devices(devices_dir: Path | None = None) -> tuple[list[Device], list[BrokenDevice]]:
    """Every device file of the folder: the ones that load, and the broken ones with their problem."""
    folder = devices_dir or default_devices_dir()
    devices, broken = [], []
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            devices.append(load_device_file(path))
        except InventoryError as error:
            try:
                tags = read_toml(path, InventoryError, "device file").get("tags")
                tags = tuple(str(t) for t in tags) if isinstance(tags, list) else ()
            except InventoryError:
                tags = None
            broken.append(BrokenDevice(path, str(error), tags))
    return devices, broken


def list_devices(devices_dir: Path | None = None) -> list[Device]:
    """The devices that load (scan_devices names the others)."""
    return scan_devices(devices_dir)[0]


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
