"""The run record: run.json's document, with a typed accessor for each field other modules read.

It is the JSON document itself (a dict, written as it is), so nothing is lost between reading and writing
and an older file's extra keys survive; code outside results/ reads it through these properties, and only
results/store.py writes it. Its format history is in store.py, above RUN_SCHEMA_VERSION.
"""

from __future__ import annotations


class RunRecord(dict):
    @property
    def run_id(self) -> str:
        return self["run_id"]

    @property
    def status(self) -> str:
        return self["status"]

    @property
    def device(self) -> dict:
        """name, transport, description, emulated, host, address, tags: as the device file said."""
        return self["device"]

    @property
    def device_name(self) -> str:
        return self["device"]["name"]

    @property
    def emulated(self) -> bool:
        return bool(self["device"].get("emulated"))

    @property
    def model_name(self) -> str:
        return self["model"]["name"]

    @property
    def model_sha256(self) -> str | None:
        return self["model"].get("sha256")

    @property
    def dataset(self) -> dict | None:
        """path, sha256, samples, labelled, calibration_holdout; None for a model measured without one."""
        return self.get("dataset")

    @property
    def settings(self) -> dict:
        """The settings the device saw, by name (core/settings.py)."""
        return self.get("settings", {})

    @property
    def rounds(self) -> int:
        return self.get("rounds") or 1  # None: chosen after the first round, which is all there is so far

    @property
    def variant_files(self) -> list[dict]:
        """Each planned variant's file: name, bytes, sha256, recipe, weights, notes."""
        return self.get("variants", [])

    @property
    def skipped(self) -> list[dict]:
        """Variants this model does not allow: name and reason."""
        return self.get("skipped", [])

    @property
    def started_at(self) -> str:
        return self.get("started_at", "")

    @property
    def device_lost(self) -> str | None:
        """Why the device went away mid-run, when it did (every later measurement is then not-measured)."""
        return self.get("device_lost")

    @property
    def edgebench_version(self) -> str | None:
        return self.get("edgebench_version")

    @property
    def matrix(self) -> dict | None:
        """For one run of a matrix (`--accelerator gpu,cpu`): id (shared by its runs), setting, values, index."""
        return self.get("matrix")
