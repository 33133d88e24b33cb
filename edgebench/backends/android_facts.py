"""What a phone says about itself over a plain shell: getprop, CPU frequencies, thermal zones, battery, disk.

One shell script prints `key=value` lines; `parse_facts` turns them into the probe's fields.
Everything is read with what a stock Android shell has (toybox: getprop, cat, df, dumpsys);
a value the phone does not give is left out, never guessed.
"""

from __future__ import annotations

import shlex

PROPERTIES = {
    "model": "ro.product.model",
    "manufacturer": "ro.product.manufacturer",
    "soc": "ro.soc.model",
    "soc_manufacturer": "ro.soc.manufacturer",
    "hardware": "ro.hardware",
    "abi": "ro.product.cpu.abi",
    "release": "ro.build.version.release",
    "sdk": "ro.build.version.sdk",
    "fingerprint": "ro.build.fingerprint",
}


# The thermal zones (m°C on most phones) and the battery (tenths of a °C): all a cool-down needs to read.
TEMPERATURE_LINES = (
    "for z in /sys/class/thermal/thermal_zone*; do "
    '[ -r "$z/temp" ] && echo "zone.$(cat $z/type 2>/dev/null)=$(cat $z/temp 2>/dev/null)"; done',
    "dumpsys battery 2>/dev/null | sed -n 's/^ *temperature: *\\([0-9-]*\\).*/battery_decic=\\1/p'",
)


def temperature_script() -> str:
    return "; ".join(TEMPERATURE_LINES) + "; true"


# The benchmark tools the backend drives, told apart by their --help: TFLite's benchmark_model, LiteRT's
# benchmark_litert_model (CompiledModel; --use_gpu/--use_npu), and its Python edition the ai-edge-litert wheel
# carries (ai_edge_litert/tools/benchmark_litert_model.py: --model, --result_json).
TOOL_TFLITE = "benchmark_model"
TOOL_LITERT = "benchmark_litert_model"
TOOL_PYTHON = "benchmark_litert_model.py"


def facts_script(workdir: str, binary: str | None) -> str:
    lines = [f'echo "prop.{key}=$(getprop {prop} 2>/dev/null)"' for key, prop in PROPERTIES.items()]
    lines += [
        'echo "cores=$(grep -c ^processor /proc/cpuinfo 2>/dev/null)"',
        "for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do "
        '[ -r "$f" ] && echo "maxfreq.$(basename $(dirname $(dirname $f)))=$(cat $f)"; done',
        *TEMPERATURE_LINES,
        f"mkdir -p {shlex.quote(workdir)} && df -k {shlex.quote(workdir)} 2>/dev/null | tail -n 1 | "
        "awk '{print \"free_kib=\" $4}'",
    ]
    if binary:
        quoted = shlex.quote(binary)
        lines.append(
            f"if [ -x {quoted} ]; then echo binary=executable; elif [ -e {quoted} ]; then echo binary=not-executable; "
            "else echo binary=missing; fi"
        )
        # Which flags it knows: --result_file_path (the proto) came with LiteRT's benchmark tool.
        lines.append(f"[ -x {quoted} ] && {quoted} --help 2>&1 | grep -q result_file_path && echo binary.proto=1")
        # --op_profiling_output_mode=proto: the per-operator profile as a proto, exact, not a table to parse.
        lines.append(f"[ -x {quoted} ] && {quoted} --help 2>&1 | grep -q op_profiling_output_mode && "
                     "echo binary.op_proto=1")  # fmt: skip
        # LiteRT's benchmark tool names its per-operator profiler --use_profiler, TFLite's --enable_op_profiling.
        lines.append(f"[ -x {quoted} ] && {quoted} --help 2>&1 | grep -q enable_op_profiling || "
                     f"{{ [ -x {quoted} ] && {quoted} --help 2>&1 | grep -q use_profiler && "
                     "echo binary.use_profiler=1; }")  # fmt: skip
        # Which tool it is: LiteRT's benchmark_litert_model has --use_npu; its Python edition (in the ai-edge-litert
        # wheel) also --result_json, and flags of its own (--model, no --graph).
        lines.append(f"[ -x {quoted} ] && {quoted} --help 2>&1 | grep -q use_npu && echo binary.litert=1")
        lines.append(f"[ -x {quoted} ] && {quoted} --help 2>&1 | grep -q result_json && echo binary.json=1")
    return "; ".join(lines) + "; true"


def parse_facts(stdout: str) -> dict:
    raw: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and value.strip():
            raw[key.strip()] = value.strip()
    android = {key: raw[f"prop.{key}"] for key in PROPERTIES if f"prop.{key}" in raw}
    max_khz = {}
    for key, value in raw.items():
        if key.startswith("maxfreq.cpu") and value.isdigit():
            max_khz[int(key[len("maxfreq.cpu") :])] = int(value)
    zones = {}
    for key, value in raw.items():
        if key.startswith("zone."):
            try:
                # Zones report millidegrees on most phones, whole degrees on a few.
                zones[key[5:]] = int(value) / 1000 if abs(int(value)) > 200 else float(value)
            except ValueError:
                continue
    battery = int(raw["battery_decic"]) / 10 if raw.get("battery_decic", "").lstrip("-").isdigit() else None
    facts = {
        "android": android,
        "cores": int(raw["cores"]) if raw.get("cores", "").isdigit() and int(raw["cores"]) > 0 else None,
        "cpu_max_khz": max_khz,
        "big_cores": big_cores(max_khz),
        "thermal_zones": zones,
        "battery_c": battery,
        "free_bytes": int(raw["free_kib"]) * 1024 if raw.get("free_kib", "").isdigit() else None,
        "binary": raw.get("binary"),
        "binary_writes_proto": raw.get("binary.proto") == "1",
        "binary_writes_op_proto": raw.get("binary.op_proto") == "1",
        "binary_tool": TOOL_PYTHON
        if raw.get("binary.json") == "1"
        else TOOL_LITERT
        if raw.get("binary.litert") == "1"
        else TOOL_TFLITE,
        "binary_profiler_flag": "--use_profiler=true"
        if raw.get("binary.use_profiler") == "1"
        else "--enable_op_profiling=true",
    }
    readings = [t for t in zones.values() if -20 < t < 150]  # a zone at 0 or 6553.5 is a placeholder, not a reading
    facts["temperature_c"] = max(readings) if readings else battery
    return facts


def big_cores(max_khz: dict[int, int]) -> list[int]:
    """The CPUs with the highest maximum frequency (the 'big' or 'prime' cluster); all of them when equal."""
    if not max_khz:
        return []
    top = max(max_khz.values())
    return sorted(cpu for cpu, khz in max_khz.items() if khz == top)


def describe(facts: dict) -> str:
    android = facts.get("android", {})
    who = " ".join(v for v in (android.get("manufacturer"), android.get("model")) if v) or "unknown phone"
    parts = [who]
    if android.get("soc"):
        parts.append(f"SoC {android.get('soc_manufacturer', '')} {android['soc']}".replace("  ", " "))
    if android.get("release"):
        parts.append(f"Android {android['release']} (SDK {android.get('sdk', '?')})")
    if android.get("abi"):
        parts.append(android["abi"])
    if facts.get("cores"):
        big = facts.get("big_cores") or []
        parts.append(f"{facts['cores']} cores" + (f", big: {','.join(map(str, big))}" if big else ""))
    return ", ".join(parts)
