"""Does LiteRT's own benchmark tool time GPU inferences, or queued work? Side by side, in one go.

    python bench/queued_gpu_timing.py            # about 10 seconds on a 2-core VM

On the GPU accelerator (devices/local-gpu.toml: SwiftShader here, where no GPU is), for MNIST float32:
- the ai-edge-litert wheel's tools/benchmark_litert_model.py --use_gpu (times each run call alone);
- the same tool on the CPU;
- edgebench's agent, one process each on the GPU and the CPU accelerator (reads the outputs in every timed
  inference, so each one is finished).
Prints each median and the ratios. On a CPU both agree (the run call is synchronous there); on a GPU the
tool's figure is the time to queue the work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "edgebench" / "zoo" / "mnist" / "mnist_float32.tflite"
SWIFTSHADER = "/usr/lib/chromium/vk_swiftshader_icd.json"
RUNS = 64


def environment(folder: str) -> dict:
    return {**os.environ, "VK_ICD_FILENAMES": SWIFTSHADER, "XDG_RUNTIME_DIR": folder}


def tool_median_ms(accelerator: str, folder: str) -> float:
    result = Path(folder) / f"tool-{accelerator}.json"
    flags = ["--use_gpu"] if accelerator == "gpu" else []
    subprocess.run(
        [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", f"--model={MODEL}", *flags,
         f"--num_runs={RUNS}", "--warmup_runs=5", f"--result_json={result}"],
        capture_output=True, check=True, env=environment(folder),
    )  # fmt: skip
    return json.loads(result.read_text())["latency"]["median_ms"]


def agent_median_ms(accelerator: str, folder: str) -> float:
    output = Path(folder) / f"agent-{accelerator}.json"
    subprocess.run(
        [sys.executable, str(ROOT / "edgebench" / "agent" / "agent.py"), str(MODEL), "--accelerator", accelerator,
         "--vulkan-icd", SWIFTSHADER, "--samples", "0", "--min-runs", str(RUNS), "--max-runs", str(RUNS),
         "--min-seconds", "0.01", "--warmup-min-runs", "5", "--warmup-min-seconds", "0", "--output", str(output)],
        capture_output=True, check=True, env=environment(folder),
    )  # fmt: skip
    return json.loads(output.read_text())["timing"]["stats"]["p50"] / 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        figures = {(who, accelerator): measure(accelerator, folder)
                   for who, measure in (("benchmark_litert_model.py", tool_median_ms), ("edgebench agent",
                                                                                        agent_median_ms))
                   for accelerator in ("gpu", "cpu")}  # fmt: skip
    print(f"MNIST float32, median of {RUNS} runs (ms); GPU = SwiftShader (a CPU), so only the ratios mean anything")
    for (who, accelerator), median in figures.items():
        print(f"  {who:28} {accelerator}: {median:9.3f}")
    tool, agent = "benchmark_litert_model.py", "edgebench agent"
    print(f"GPU: agent / tool = {figures[agent, 'gpu'] / figures[tool, 'gpu']:.0f}x (the tool times queued work)")
    print(f"CPU: agent / tool = {figures[agent, 'cpu'] / figures[tool, 'cpu']:.2f}x (both time whole inferences)")


if __name__ == "__main__":
    main()
