"""Farm files: which devices, which models and variants, how to measure, and what to compare with.

    # farms/nightly.toml
    devices = ["tag:raspberry-pi", "local"]     # names, .toml paths or tag:TAG selectors
    exclude = ["pi5"]                            # optional
    [[models]]
    model = "mnist"                              # zoo name or .tflite path
    variants = ["float32", "int8"]               # optional: default, every variant the model allows
    [run]
    samples = 500
    rounds = 3
    [baseline]
    policy = "last:5"                            # last, best, last:N or a pinned run id
    threshold = "10%"
    confirm = true                               # re-measure a slower verdict (A/B) before saying so (default)
    confirm_pairs = 10                           # A B pairs of fresh processes it measures
    [health]
    quarantine_after = 3                         # consecutive failed runs
    [retry]
    connect_attempts = 3                         # connecting and pushing
    rerun_failed = 1                             # new, labelled attempts of a failed measurement

Paths are relative to the farm file. Every error names the file and the key, like device files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgebench.core.errors import EdgebenchError
from edgebench.core.fileio import read_toml, sha256_file
from edgebench.core.settings import CONFIRM_PAIRS, SettingError, read_table, resolve
from edgebench.devices.inventory import DEVICE_NAME, Device, InventoryError, resolve_device, scan_devices
from edgebench.quantize.variants import parse_variant_names
from edgebench.transport.options import OptionsError, check_types


class FarmFileError(EdgebenchError):
    """A farm file is missing, unreadable or invalid; the message names the file and the key."""


@dataclass(frozen=True)
class ModelJob:
    model: str  # zoo name, or a path resolved against the farm file
    variants: str | None = None  # comma-separated, as --variants takes them
    dataset: Path | None = None
    calibration: Path | None = None


@dataclass(frozen=True)
class FarmFile:
    name: str
    path: Path
    sha256: str
    devices: tuple[str, ...]
    exclude: tuple[str, ...]
    models: tuple[ModelJob, ...]
    settings: dict  # the [run] section by setting name (core/settings.py), checked; FARM_DEFAULTS under it
    baseline: str = "last"
    threshold: str = "5%"
    confirm: bool = True  # a slower verdict is re-measured on its board (A/B) before the night says so
    confirm_pairs: int = CONFIRM_PAIRS
    quarantine_after: int = 3
    connect_attempts: int = 3
    rerun_failed: int = 0
    # Devices (names or tag:TAG) that may be missing here: one that cannot be reached or set up before anything
    # is measured on it is "absent", neither a failure nor quarantined (a demo farm that runs on any machine).
    optional: tuple[str, ...] = ()

    @property
    def rounds(self) -> int | None:
        return resolve(self.settings).rounds

    def is_optional(self, device) -> bool:
        return any(spec == device.name or spec in (f"tag:{t}" for t in device.tags) for spec in self.optional)


_TOP = {
    "name": str,
    "devices": list,
    "exclude": list,
    "optional": list,
    "models": list,
    "run": dict,
    "baseline": dict,
    "health": dict,
    "retry": dict,
}
_MODEL = {"model": str, "variants": list, "dataset": str, "calibration": str}
# Where a night differs from `edgebench run`: a device another run holds is waited for an hour, not refused.
FARM_DEFAULTS = {"wait": 3600.0}
_BASELINE = {"policy": str, "threshold": str, "confirm": bool, "confirm_pairs": int}
_HEALTH = {"quarantine_after": int}
_RETRY = {"connect_attempts": int, "rerun_failed": int}


def load_farm_file(path: Path) -> FarmFile:
    path = Path(path)
    data = read_toml(path, FarmFileError, "farm file")
    try:
        return _validate(data, path)
    except OptionsError as error:
        raise FarmFileError(f"{path}: {error}") from None


def _validate(data: dict, path: Path) -> FarmFile:
    check_types("", data, _TOP)
    name = data.get("name", path.stem)
    if not DEVICE_NAME.fullmatch(name):
        raise FarmFileError(f"{path}: key 'name' must be letters, digits, '.', '_' or '-', got {name!r}")
    devices = data.get("devices")
    if not devices:
        raise FarmFileError(f"{path}: key 'devices' is required: device names, .toml paths or tag:TAG selectors")
    for key in ("devices", "exclude", "optional"):
        if not all(isinstance(d, str) and d for d in data.get(key, [])):
            raise FarmFileError(f"{path}: key {key!r} must be a list of device names, paths or tag:TAG")
    models = data.get("models")
    if not models:
        raise FarmFileError(f'{path}: at least one [[models]] table is required (model = "mnist")')
    jobs = []
    for index, entry in enumerate(models):
        where = f"models[{index}]."
        if not isinstance(entry, dict):
            raise FarmFileError(f"{path}: models[{index}] must be a table")
        check_types(where, entry, _MODEL)
        if not entry.get("model"):
            raise FarmFileError(f"{path}: key '{where}model' is required (a zoo name or a .tflite path)")
        variants = None
        if "variants" in entry:
            if not entry["variants"] or not all(isinstance(v, str) for v in entry["variants"]):
                raise FarmFileError(f"{path}: key '{where}variants' must be a list of variant names")
            variants = ",".join(entry["variants"])
            try:
                parse_variant_names(variants)
            except EdgebenchError as error:
                raise FarmFileError(f"{path}: key '{where}variants': {error}") from None
        jobs.append(
            ModelJob(
                model=_model_spec(entry["model"], path.parent),
                variants=variants,
                dataset=_relative(entry.get("dataset"), path.parent),
                calibration=_relative(entry.get("calibration"), path.parent),
            )
        )
    try:
        settings = FARM_DEFAULTS | read_table(data.get("run", {}), "run.")
        resolve(settings, name_of=lambda setting: f"'run.{setting.key}'")  # what only the whole can say
    except SettingError as error:
        raise FarmFileError(f"{path}: {error}") from None
    baseline = data.get("baseline", {})
    check_types("baseline.", baseline, _BASELINE)
    threshold = baseline.get("threshold", "5%")
    from edgebench.compare.verdicts import parse_threshold

    try:
        parse_threshold(threshold)
    except ValueError as error:
        raise FarmFileError(f"{path}: key 'baseline.threshold': {error}") from None
    from edgebench.history.lookup import check_policy

    try:
        check_policy(baseline.get("policy", "last"))  # the syntax here; a pinned run's existence when it runs
    except EdgebenchError as error:
        raise FarmFileError(f"{path}: key 'baseline.policy': {error}") from None
    if baseline.get("confirm_pairs", CONFIRM_PAIRS) < 3:
        raise FarmFileError(f"{path}: key 'baseline.confirm_pairs' must be at least 3")
    health, retry = data.get("health", {}), data.get("retry", {})
    check_types("health.", health, _HEALTH)
    check_types("retry.", retry, _RETRY)
    if health.get("quarantine_after", 3) < 1:
        raise FarmFileError(f"{path}: key 'health.quarantine_after' must be at least 1")
    if retry.get("connect_attempts", 3) < 1 or retry.get("rerun_failed", 0) < 0:
        raise FarmFileError(f"{path}: key 'retry.connect_attempts' must be at least 1, 'retry.rerun_failed' 0 or more")
    return FarmFile(
        name=name,
        path=path,
        sha256=sha256_file(path),
        devices=tuple(devices),
        exclude=tuple(data.get("exclude", [])),
        optional=tuple(data.get("optional", [])),
        models=tuple(jobs),
        settings=settings,
        baseline=baseline.get("policy", "last"),
        threshold=threshold,
        confirm=baseline.get("confirm", True),
        confirm_pairs=baseline.get("confirm_pairs", CONFIRM_PAIRS),
        quarantine_after=health.get("quarantine_after", 3),
        connect_attempts=retry.get("connect_attempts", 3),
        rerun_failed=retry.get("rerun_failed", 0),
    )


def _relative(value: str | None, base: Path) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _model_spec(value: str, base: Path) -> str:
    """A zoo name stays a name; anything that looks like a path is taken relative to the farm file."""
    if value.endswith(".tflite") or "/" in value:
        return str(_relative(value, base))
    return value


def select_devices(farm: FarmFile, devices_dir: Path | None = None) -> list[Device]:
    """The farm's devices, in the order given, each once: names, paths (relative to the farm file), tag:TAG."""
    inventory: list[Device] | None = None
    chosen: dict[str, Device] = {}

    def expand(spec: str) -> list[Device]:
        nonlocal inventory
        if spec.startswith("tag:"):
            if inventory is None:
                inventory, broken = scan_devices(devices_dir)
                # A broken file stops the farm only when it carries a tag the farm selects; an unrelated one does
                # not (`devices list` names it), nor one whose TOML cannot be read at all to say its tags.
                selected_tags = {s[4:] for s in farm.devices if s.startswith("tag:")}
                for bad in broken:
                    if bad.tags and selected_tags & set(bad.tags):
                        raise FarmFileError(f"{farm.path}: key 'devices': {bad.problem}")
            found = [d for d in inventory if spec[4:] in d.tags]
            if not found:
                raise FarmFileError(f"{farm.path}: key 'devices': no device in the inventory has tag {spec[4:]!r}")
            return found
        if spec.endswith(".toml") or "/" in spec:
            spec = str(_relative(spec, farm.path.parent))
        try:
            return [resolve_device(spec, devices_dir)]
        except InventoryError as error:
            raise FarmFileError(f"{farm.path}: key 'devices': {error}") from None

    for spec in farm.devices:
        for device in expand(spec):
            if device.name in chosen and chosen[device.name].source != device.source:
                raise FarmFileError(
                    f"{farm.path}: two devices are named {device.name!r} ({chosen[device.name].source} and "
                    f"{device.source}); results are kept by device name"
                )
            chosen[device.name] = device
    excluded = set()
    for spec in farm.exclude:
        try:
            excluded |= {d.name for d in expand(spec)}
        except FarmFileError:
            excluded.add(spec)  # excluding what this inventory does not have excludes nothing
    selected = [d for name, d in chosen.items() if name not in excluded]
    if not selected:
        raise FarmFileError(f"{farm.path}: every device is excluded; nothing to run")
    return selected
