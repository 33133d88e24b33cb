"""JSON Schemas of the documents edgebench reads back, so a damaged file is named, not a traceback.

Only what readers rely on is required; the agent and the run store write more.
Validation uses jsonschema; the agent itself never imports this (it only writes).
"""

from __future__ import annotations

import math

from jsonschema import Draft202012Validator

AGENT_RESULT = {
    "type": "object",
    "required": ["schema_version", "kind", "status"],
    "properties": {
        "schema_version": {"enum": [1, 2, 3]},
        "kind": {"const": "edgebench.agent-result"},
        "status": {"enum": ["ok", "error"]},
    },
    # A successful measurement carries what every reader uses.
    "if": {"properties": {"status": {"const": "ok"}}},
    "then": {
        "required": ["timing", "memory", "environment"],
        "properties": {
            "timing": {
                "type": "object",
                "required": ["samples_us", "stats", "load_us", "allocate_us"],
                "properties": {
                    # Empty only in a document that says so (benchmark_model gives no per-sample latencies).
                    # Its items are checked in problem(): jsonschema descends into every one of a micro
                    # model's hundreds of thousands of samples, which made `check` take minutes.
                    "samples_us": {"type": "array"},
                    "stats": {"type": "object", "required": ["count", "p50", "p90", "mean"]},
                },
            },
            "memory": {"type": "object", "required": ["peak_rss_after_runs"]},
            "environment": {"type": "object", "required": ["runtime"]},
        },
    },
}

RUN = {
    "type": "object",
    "required": ["schema_version", "kind", "run_id", "status", "device", "model", "measurements", "started_at"],
    "properties": {
        "run_id": {"type": "string"},
        "status": {"type": "string"},
        "device": {"type": "object", "required": ["name"]},
        "model": {"type": "object", "required": ["name"]},
        "measurements": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["variant", "round", "status", "file"],
                # Version 2 on; one of results.store.FailureKind's values, checked when read.
                "properties": {"kind": {"type": ["string", "null"]}},
            },
        },
    },
}


def _samples_problem(document: dict) -> str | None:
    """Every latency sample is a number (bool is not), checked in one pass instead of a validator per item."""
    samples = (document.get("timing") or {}).get("samples_us") if document.get("status") == "ok" else None
    if isinstance(samples, list):
        if not set(map(type, samples)) <= {float, int}:
            return "timing/samples_us: every sample must be a number"
        # JSON as Python writes it allows NaN and Infinity: a verdict on them would read "p=nan".
        if samples and not (math.isfinite(sum(samples)) and min(samples) >= 0):
            return "timing/samples_us: every sample must be a finite time of 0 or more (found NaN, infinity or < 0)"
    return None


_VALIDATORS = {id(schema): Draft202012Validator(schema) for schema in (AGENT_RESULT, RUN)}


def problem(document, schema: dict) -> str | None:
    """The first way `document` breaks `schema`, in one line, or None when it is valid."""
    error = next(iter(_VALIDATORS[id(schema)].iter_errors(document)), None)
    if error is None:
        return _samples_problem(document) if schema is AGENT_RESULT else None
    where = "/".join(str(part) for part in error.absolute_path) or "the document"
    return f"{where}: {error.message}"
