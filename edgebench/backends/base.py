"""The backend contract: what every way of measuring on a device offers the runner.

The runner schedules (which variant, which round, the lease, cool-downs); a backend measures,
through one open transport: `python_agent` (edgebench's agent on the device's own Python),
`benchmark_model` (TFLite/LiteRT's native binary, for a phone with no Python), and the ones to
come. Each implements `Backend`; the types they share live here, not in one of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgebench.core.settings import Settings
from edgebench.results.store import Measurement
from edgebench.transport.base import DeviceError, Transport


@dataclass(frozen=True)
class HostFiles:
    """The host's copies of what a measurement pushes: a backend that cannot measure accuracy on the
    device (benchmark_model) computes it from these, on the host, and says so."""

    model: Path
    dataset: Path | None
    reference: Path | None
    float32_predictions: Path | None = None  # float32's on this device: other variants' accuracy stops when settled


@dataclass(frozen=True)
class Progress:
    """One progress report of a measurement: which phase, how far."""

    phase: str | None
    done: int | None
    total: int | None


class Backend(ABC):
    """Measures variants on one device, reached through one open transport."""

    name: str
    transport: Transport
    # True where the device's tool times each operator itself (benchmark_model --enable_op_profiling); else
    # --profile times single-operator probe models the runner stages.
    profiles_operators: bool = False

    @abstractmethod
    def probe(self, runtime: str | None = None, python: list[str] | None = None, workdir: str | None = None) -> dict:
        """What the device is and has (runtime, cores, free disk, temperature): an `edgebench.probe` document."""

    @abstractmethod
    def require_runnable(self, probe: dict, device_name: str) -> dict:
        """The probe again if the device can measure; HealthCheckFailed saying what to do if it cannot."""

    @abstractmethod
    def measure(self, variant: str, round_number: int, model_path: str, sha256: str, settings: Settings, *,
                dataset_path: str | None, reference_path: str | None, on_progress: Callable[[Progress], None],
                host: HostFiles | None = None, float32_predictions: str | None = None,
                float32_model: str | None = None, probes: Sequence[str] = ()) -> Measurement:  # fmt: skip
        """One measurement of one staged variant; a failure is a failed Measurement with its kind, never raised,
        unless the device itself is gone (DeviceError and its kinds). `float32_predictions` (staged) lets the
        accuracy of a variant stop once its change against float32 is settled; `float32_model` (staged) is what
        --profile measures each layer's error against; `probes` (staged) the single-operator models it times."""

    @abstractmethod
    def temperature(self) -> float | None:
        """The device's temperature now, for a cool-down; None where it has no sensor."""

    @abstractmethod
    def lease_call(self, lease_dir: str, owner: object, ttl: float,
                   stall_timeout: float | None = None) -> Callable[[str], dict]:  # fmt: skip
        """A function taking "acquire", "renew" or "release" that carries out that action of the device lease."""


def check_cpus(cpus: Sequence[int], available: Sequence[int], device_name: str) -> None:
    """--cpus must name CPUs the device has (and may use), said before anything runs, not as 'Errno 22'."""
    missing = sorted(set(cpus) - set(available))
    if missing:
        raise DeviceError(
            f"--cpus {','.join(map(str, cpus))}: device {device_name!r} has no CPU {','.join(map(str, missing))} "
            f"(it has {','.join(map(str, available))})"
        )
