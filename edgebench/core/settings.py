"""The measurement settings: one typed definition of each, from which everything else is made.

`Settings` below is the table. Each field says its type, default, unit, limits, help text, and
where else it appears: the CLI flags of `edgebench run`, the farm file's [run] keys, a device
file's defaults, the on-device agent's argv, the labs' job JSON and run.json's "settings" are all
generated from it or checked against it, and compare reads from it which settings make two runs
incomparable. Adding a setting is one field here plus the agent's own parser (the agent imports
nothing of edgebench; tests/test_settings.py proves that the two agree on every setting).

Every value has one name everywhere: the field's. Two settings keep an older spelling for the CLI
flag and the farm key (`--warmup-runs` / `warmup_runs` for `warmup_min_runs`), so existing
command lines and farm files keep working.
"""

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field

RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
# Without --rounds: this many rounds when a round is cheap (every variant's timed runs in round 1 took at most
# CHEAP_ROUND_SECONDS), one otherwise (a large model on a slow board).
AUTO_ROUNDS = 3
CHEAP_ROUND_SECONDS = 3.0
# A B pairs of fresh agent processes an A/B confirmation of a slower verdict measures (`check --confirm`, the
# farm): enough for a paired test to tell 10% on a board whose processes differ by a few percent.
CONFIRM_PAIRS = 10
DELEGATES = ("xnnpack", "none")
ACCELERATORS = ("cpu", "gpu", "npu")
GPU_PRECISIONS = ("default", "fp32")
# The vendor dispatch libraries an ai-edge-litert wheel carries (ai_edge_litert/vendors/<name>).
NPU_VENDORS = ("intel_openvino", "qualcomm", "mediatek", "google_tensor", "samsung")
OPENVINO_DEVICES = ("CPU", "GPU", "NPU")
# `--samples all`: every sample; stored as the data set's size once that is known (pipeline.start_run).
ALL_SAMPLES = 2**31 - 1


@dataclass(frozen=True)
class Spec:
    """What the table says of one setting, beside its name, type and default."""

    help: str
    unit: str = ""
    minimum: float | None = None  # the value must be at least this
    above: float | None = None  # the value must be more than this
    choices: tuple[str, ...] = ()
    words: tuple[tuple[str, typing.Any], ...] = ()  # values spelled as words ("all"), on the command line and in TOML
    agent: bool = False  # passed to the on-device agent as --<name-with-dashes>
    device: bool = False  # a device file may set its default
    comparable: str | None = None  # two runs that differ in it are not compared; the label says in what
    flag: str | None = None  # the CLI flag, where it is not --<name-with-dashes>
    key: str | None = None  # the farm file's [run] key, where it is not the name
    # A list of values (gpu,cpu on the command line, an array in TOML) is a matrix: `edgebench run` measures one
    # run per value, in that order, and sets them side by side. Each run holds one value.
    matrix: bool = False


def setting(default, help: str, **spec) -> typing.Any:
    return field(default=default, metadata={"spec": Spec(help, **spec)})


@dataclass(frozen=True)
class Settings:
    """How one run measures. Defaults follow TFLite's benchmark_model, with its times split over the rounds;
    None means "decided later"."""

    # On the device: passed to the agent (and to benchmark_model where it has the same knob).
    threads: int = setting(1, "interpreter threads", minimum=1, agent=True, device=True, comparable="threads")
    delegate: str = setting("xnnpack", "the CPU delegate", choices=DELEGATES, agent=True, device=True,
                            comparable="delegate")  # fmt: skip
    cpus: tuple[int, ...] = setting((), "pin the agent to these CPUs, e.g. 2,3 (big cores)", agent=True,
                                    device=True, comparable="CPU pinning")  # fmt: skip
    runtime: str | None = setting(None, "the TFLite runtime (default: the first the device can import)",
                                  choices=RUNTIMES, agent=True, device=True)  # fmt: skip
    # LiteRT's CompiledModel API picks CPU, GPU or NPU and says whether every node ran there; without it, the
    # classic interpreter with the CPU delegate above.
    accelerator: str | None = setting(None, "measure through LiteRT's CompiledModel on this accelerator "
                                      "(default: the interpreter); a list such as gpu,cpu measures each in turn "
                                      "(a variant x accelerator matrix)", choices=ACCELERATORS, agent=True,
                                      device=True, comparable="accelerator", matrix=True)  # fmt: skip
    vulkan_icd: str | None = setting(None, "with accelerator gpu: the Vulkan driver manifest the device loads "
                                     "(a software GPU such as SwiftShader)", agent=True, device=True)  # fmt: skip
    # The runtime's default lets a GPU compute float32 models at lower precision; fp32 forbids it. Fidelity
    # against the CPU's float32 shows which one a device's GPU did.
    gpu_precision: str | None = setting(None, "with accelerator gpu: 'fp32' forbids the GPU lower precision "
                                        "(default: the runtime's choice)", choices=GPU_PRECISIONS, agent=True,
                                        device=True, comparable="GPU precision")  # fmt: skip
    npu_vendor: str | None = setting(None, "with accelerator npu: the vendor dispatch of the ai-edge-litert wheel "
                                     "to use (intel_openvino: OpenVINO; needs its runtime libraries)",
                                     choices=NPU_VENDORS, agent=True, device=True, comparable="NPU vendor")  # fmt: skip
    npu_libraries: str | None = setting(None, "with npu_vendor: the folder of the vendor's runtime libraries "
                                        "(default for intel_openvino: the installed openvino package's)",
                                        agent=True, device=True)  # fmt: skip
    openvino_device: str | None = setting(None, "with npu_vendor intel_openvino: the OpenVINO device the NPU path "
                                          "compiles for (CPU where there is no Intel NPU: the path is real, the "
                                          "hardware a CPU)", choices=OPENVINO_DEVICES, agent=True, device=True,
                                          comparable="OpenVINO device")  # fmt: skip
    # benchmark_model's --nnapi_accelerator_name: which NNAPI device (an NPU, a DSP) a phone's run goes to.
    nnapi_accelerator: str | None = setting(None, "with accelerator npu on Android: the NNAPI device by name, "
                                            "e.g. 'qti-dsp' or 'google-edgetpu' (default: NNAPI's choice)",
                                            device=True, comparable="NNAPI device")  # fmt: skip
    # Without a number, a variant's accuracy is evaluated in a fixed random order until its change against
    # float32 is settled within --accuracy-tolerance (agent.settled_change): 1,000 images say what 10,000 do.
    samples: int | None = setting(None, "accuracy on the first N samples, or 'all' (default: until the change "
                                  "against float32 is settled; 0: no accuracy)", minimum=0, agent=True,
                                  words=(("all", ALL_SAMPLES),), comparable="accuracy samples")  # fmt: skip
    accuracy_tolerance: float = setting(0.5, "an accuracy change smaller than this is no loss: evaluation stops "
                                        "once the change is known to be on one side of it, and the answer line "
                                        "allows it (0: every sample)", unit="pp", minimum=0, agent=True,
                                        comparable="accuracy tolerance")  # fmt: skip
    warmup_min_runs: int = setting(1, "minimum warm-up runs", minimum=0, agent=True, flag="--warmup-runs",
                                   key="warmup_runs", comparable="warm-up runs")  # fmt: skip
    warmup_min_seconds: float = setting(0.25, "minimum warm-up time", unit="s", minimum=0, agent=True,
                                        flag="--warmup-seconds", key="warmup_seconds",
                                        comparable="warm-up time")  # fmt: skip
    # 64: the fewest runs from which MLPerf's early-stopping p90 can be estimated (results/latency.py).
    min_runs: int = setting(64, "minimum measured runs", minimum=1, agent=True, comparable="minimum runs")
    # Half of benchmark_model's 1 s (and half its 0.5 s warm-up) per process, because a variant is measured in
    # several fresh processes (rounds): three of them time it for 1.5 s, and they show the between-process noise
    # that one long process hides.
    min_seconds: float = setting(0.5, "minimum measuring time per round", unit="s", above=0, agent=True,
                                 comparable="minimum time")  # fmt: skip
    max_seconds: float = setting(150.0, "maximum measuring time", unit="s", above=0, agent=True)
    # A bound on the latency samples one agent process keeps (a micro model makes hundreds of thousands in
    # --max-seconds): the agent can hold them in storage sized before it measures memory.
    max_runs: int | None = setting(None, "stop after this many measured runs (default: only --max-seconds stops)",
                                   minimum=1, agent=True, comparable="run cap")  # fmt: skip
    # On the controller: how the run is driven.
    fidelity_samples: int = setting(100, "inputs on which outputs are compared with float32 (0: none)", minimum=0)
    # Each round is a fresh agent process, and processes are the unit of evidence of a verdict (most of the
    # noise is between processes): more of them where they are cheap, as pyperf runs 20.
    rounds: int | None = setting(None, "interleave the variants N times (A B C A B C ...), each a fresh agent "
                                 f"process (default: {AUTO_ROUNDS} where every variant's first round measured in "
                                 f"under {CHEAP_ROUND_SECONDS:g} s, else 1)", minimum=1)  # fmt: skip
    timeout: float = setting(1800.0, "kill an agent that takes longer", unit="s", above=0)
    # The agent writes a line at least every 5 s (agent.HEARTBEAT_SECONDS): this much silence is a stall.
    stall_timeout: float = setting(45.0, "an agent that sends nothing this long (it beats every 5 s) is stalled: "
                                   "that variant fails", unit="s", above=0)  # fmt: skip
    wait: float = setting(0.0, "wait this long for a device another run holds", unit="s", minimum=0)
    # Why, not only what: per-layer error against float32 and per-operator time, in the first round (it costs
    # time: the run says how much). Kernel placement is recorded always, since it costs nothing.
    profile: bool = setting(False, "also measure where the time goes (per operator) and where the precision "
                            "goes (per layer, against float32)", agent=True)  # fmt: skip

    def agent_argv(self, *, with_accuracy: bool) -> list[str]:
        """The agent's flags for these settings; accuracy (samples) only in the round that measures it."""
        argv = []
        for spec in agent_settings():
            value = getattr(self, spec.name)
            if spec.name == "samples" and not with_accuracy:
                value = 0
            if spec.type is bool:  # a switch: given when on, and only in the round that measures accuracy
                argv += [spec.agent_flag] if value and with_accuracy else []
                continue
            if value is None or value == ():
                continue
            argv += [spec.agent_flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
        return argv

    @property
    def planned_rounds(self) -> int:
        """The most rounds this run can measure: --rounds, or what the automatic choice can reach."""
        return self.rounds or AUTO_ROUNDS

    def agent_dict(self) -> dict:
        """The settings the device sees, by name: run.json's "settings"."""
        return {spec.name: _plain(getattr(self, spec.name)) for spec in agent_settings()}


@dataclass(frozen=True)
class Setting:
    """One row of the table, for the code that generates flags, keys, argv and schemas from it."""

    name: str
    type: type  # int, float, str or tuple (of CPU numbers)
    default: typing.Any
    spec: Spec

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")

    @property
    def key(self) -> str:
        return self.spec.key or self.name

    @property
    def agent_flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def optional(self) -> bool:
        return self.default is None

    def describe(self) -> str:
        """The help text with its default, as --help shows it."""
        if self.default is None or self.default == () or self.type is bool:
            return self.spec.help
        unit = f" {self.spec.unit}" if self.spec.unit else ""
        return f"{self.spec.help} ({format_value(self.default)}{unit})"

    def problem(self, value) -> str | None:
        """What is wrong with a value of the right type, in words that follow its name; None if it is fine."""
        spec = self.spec
        if value is None:
            return None if self.optional else "must be given"
        if self.type is tuple:
            if not value or any(c < 0 for c in value):
                return f"takes CPU numbers like 2,3, got {format_value(value) or 'nothing'}"
            return None
        if spec.matrix and isinstance(value, tuple):
            if len(set(value)) != len(value) or not value:
                return f"lists each value once, got {format_value(value) or 'nothing'}"
            wrong = [v for v in value if v not in spec.choices]
            return f"takes {', '.join(spec.choices)}, got {wrong[0]!r}" if wrong else None
        if spec.choices and value not in spec.choices:
            return f"must be one of {', '.join(spec.choices)}, got {value!r}"
        if self.type in (int, float):
            # Written so that NaN fails every comparison.
            if spec.minimum is not None and not value >= spec.minimum:
                least = "at least 1" if spec.minimum == 1 else f"0 or more{_unit_word(spec)}"
                return f"must be {least}, got {format_value(value)}"
            if spec.above is not None and not value > spec.above:
                return f"must be more than {format_value(spec.above)}{_unit_word(spec)}, got {format_value(value)}"
            if not math.isfinite(value):
                return f"must be a finite number, got {value}"
        return None

    def coerce(self, value):
        """A value read from TOML or JSON -> this setting's Python type; TypeError names what was expected."""
        if value is None:
            if self.optional:
                return None
            raise TypeError("a value")
        if isinstance(value, str) and value in dict(self.spec.words):
            return dict(self.spec.words)[value]
        if self.spec.matrix and isinstance(value, (list, tuple)):
            if not all(isinstance(v, str) for v in value):
                raise TypeError(f"a {self.type.__name__} or a list of them")
            return value[0] if len(value) == 1 else tuple(value)
        if self.type is bool:
            if not isinstance(value, bool):
                raise TypeError("true or false")
            return value
        if self.type is tuple:
            if not isinstance(value, (list, tuple)) or not all(_is_int(c) for c in value):
                raise TypeError("a list of CPU numbers")
            return tuple(sorted(set(value)))  # a set of CPUs: "0,0" and "1,0" mean 0 and 0,1, and compare so
        if self.type is int:
            if not _is_int(value):
                raise TypeError(" or ".join(["int", *(repr(word) for word, _ in self.spec.words)]))
            return value
        if self.type is float:
            if not (_is_int(value) or isinstance(value, float)):
                raise TypeError("int or float")
            return float(value)
        if not isinstance(value, str):
            raise TypeError("str")
        return value

    def parse_text(self, text: str):
        """A command-line value -> this setting's Python type; ValueError on a malformed one."""
        if text in dict(self.spec.words):
            return dict(self.spec.words)[text]
        if self.spec.matrix and "," in text:
            return tuple(v.strip() for v in text.split(","))
        if self.type is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if self.type is tuple:
            try:
                return tuple(sorted({int(c) for c in text.split(",") if c.strip()}))  # a set, as coerce() keeps it
            except ValueError:
                return ()  # problem() says what is wrong with it
        return self.type(text)


class SettingError(ValueError):
    """A setting's value is wrong; the message starts with where it came from (a flag or a key)."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unit_word(spec: Spec) -> str:
    return " seconds" if spec.unit == "s" else ""


def format_value(value) -> str:
    if isinstance(value, tuple | list):
        return ",".join(str(c) for c in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _base_type(annotation) -> type:
    if isinstance(annotation, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_origin(annotation) or annotation


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, _base_type(f.type), f.default, f.metadata["spec"]) for f in dataclasses.fields(Settings)
)
BY_NAME = {s.name: s for s in SETTINGS}


def agent_settings() -> tuple[Setting, ...]:
    return tuple(s for s in SETTINGS if s.spec.agent)


def device_settings() -> tuple[Setting, ...]:
    return tuple(s for s in SETTINGS if s.spec.device)


def comparability_settings() -> tuple[Setting, ...]:
    return tuple(s for s in SETTINGS if s.spec.comparable)


def read_table(table: dict, where: str, only: tuple[Setting, ...] = SETTINGS) -> dict:
    """A TOML or JSON table of settings (by key) -> {name: value}, each checked; SettingError names the key.

    `where` prefixes key names in messages ("run." for a farm file's [run], "" for a device file)."""
    known = {s.key: s for s in only}
    values = {}
    for key, raw in table.items():
        spec = known.get(key)
        if spec is None:
            raise SettingError(f"unknown key '{where}{key}' (known: {', '.join(sorted(known))})")
        try:
            value = spec.coerce(raw)
        except TypeError as expected:
            raise SettingError(f"key '{where}{key}' must be {expected}, got {raw!r}") from None
        problem = spec.problem(value)
        if problem:
            raise SettingError(f"key '{where}{key}' {problem}")
        values[spec.name] = value
    return values


def _merged(layers: tuple[dict, ...]) -> dict:
    """Each layer over the ones before it; a None value is "not given"."""
    merged = {}
    for layer in layers:
        merged.update({key: value for key, value in layer.items() if value is not None})
    return merged


def matrix_runs(*layers: dict) -> list[dict]:
    """The runs a matrix setting asks for, as one more layer each: [{}] when no setting lists several values
    (after the layers are merged: a command line's single value overrides a device file's list)."""
    merged = _merged(layers)
    lists = [s.name for s in SETTINGS if s.spec.matrix and isinstance(merged.get(s.name), tuple)]
    if len(lists) > 1:
        raise SettingError(f"only one setting can list values for a matrix, got lists for {', '.join(lists)}")
    return [{lists[0]: value} for value in merged[lists[0]]] if lists else [{}]


def resolve(*layers: dict, name_of=lambda s: s.flag) -> Settings:
    """Defaults, then each layer in turn (a device file's, then the farm's or the command line's); a None
    value in a layer means "not given". Checks what only the whole can say (min <= max seconds)."""
    merged = _merged(layers)
    for name in [s.name for s in SETTINGS if s.spec.matrix and isinstance(merged.get(s.name), tuple)]:
        # One run holds one value; a list is `edgebench run`'s matrix (matrix_runs), one run per value.
        raise SettingError(f"{name_of(BY_NAME[name])} lists {format_value(merged[name])}: a list is a matrix, "
                           "measured by 'edgebench run' one run per value; here give one value")  # fmt: skip
    settings = Settings(**merged)
    for low, high in (("min_seconds", "max_seconds"), ("min_runs", "max_runs")):
        values = (getattr(settings, low), getattr(settings, high))
        if values[1] is not None and values[0] > values[1]:
            names = (name_of(BY_NAME[low]), name_of(BY_NAME[high]))
            raise SettingError(f"need {names[0]} <= {names[1]}, got {values[0]:g} > {values[1]:g}")
    return settings


def json_schema(only: tuple[Setting, ...] = SETTINGS) -> dict:
    """A JSON Schema of a settings dict by name, as job payloads carry them."""
    properties = {}
    for s in only:
        if s.type is tuple:
            schema = {"type": "array", "items": {"type": "integer", "minimum": 0}}
        else:
            schema = {"type": {int: "integer", float: "number", str: "string", bool: "boolean"}[s.type]}
            if s.spec.choices:
                schema["enum"] = list(s.spec.choices)
            if s.spec.matrix:
                schema = {"anyOf": [schema, {"type": "array", "items": schema, "minItems": 1}]}
            if s.spec.minimum is not None:
                schema["minimum"] = s.spec.minimum
            if s.spec.above is not None:
                schema["exclusiveMinimum"] = s.spec.above
        properties[s.name] = {"anyOf": [schema, {"type": "null"}]} if s.optional else schema
    return {"type": "object", "properties": properties, "additionalProperties": False}


def plain_settings(values: dict) -> dict:
    """A settings dict by name -> JSON's types (lists for tuples)."""
    return {name: _plain(value) for name, value in values.items()}


def from_plain(values: dict) -> dict:
    """A settings dict read back from JSON (lists for tuples) -> Python values, by name."""
    return {name: BY_NAME[name].coerce(value) for name, value in values.items()}
