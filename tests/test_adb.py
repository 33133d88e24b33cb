"""Android over ADB, end to end through the stock adb client and server, against FAKE adbd test phones.

The phones speak the real ADB wire protocol (tests/fake_adbd.py); the benchmark binary is the
STAND-IN (tests/standin_benchmark_model.py) running LiteRT and printing the real binary's format.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgebench.core.errors import Cancelled
from edgebench.devices.connect import open_transport
from edgebench.devices.inventory import load_device_file
from edgebench.results.store import load_run
from edgebench.transport.base import ConnectionLost, DeviceError, Unreachable
from tests.adb_helpers import binary_wrapper, phone_file, start_phone, wait_until
from tests.helpers import MNIST_QUICK, assert_one_line_error, run_edgebench, run_main

QUICK = MNIST_QUICK


@pytest.fixture(scope="module")
def phone(adb_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("phone")
    phone = start_phone(folder / "root")
    yield phone, phone_file(folder, phone)
    phone.stop()


@pytest.fixture(scope="module")
def phone_run(phone, tmp_path_factory, variant_cache):
    _, device = phone
    results = tmp_path_factory.mktemp("phone-results")
    args = ["run", "--device", str(device), *QUICK, "--variants", "float32,int8,dynamic-int8", "--cpus", "0"]
    first = run_edgebench(*args, "--results-dir", str(results), "--cache-dir", str(variant_cache))
    # The second also profiles: benchmark_model runs again with --enable_op_profiling=true.
    second = run_edgebench(*args, "--profile", "--results-dir", str(results), "--cache-dir", str(variant_cache))
    return first, second, sorted(p for p in results.glob("phone/*") if p.is_dir())


def process_running(marker: str) -> bool:
    return marker in subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout


def test_a_run_on_the_phone_comes_from_benchmark_model_through_adb(phone_run):
    first, _, folders = phone_run
    assert first.returncode == 0, first.stderr
    assert "device: benchmark_model (statistics only" in first.stdout
    assert "accuracy and fidelity: host: ai_edge_litert" in first.stdout  # never a silent blank
    summary, measurements = load_run(folders[0])
    assert summary["device"]["address"].startswith("adb:127.0.0.1:")
    assert [m.status for m in measurements] == ["ok"] * 3
    for m in measurements:
        document = m.document
        assert document["backend"] == "benchmark_model" and document["schema_version"] == 3
        assert document["timing"]["per_sample"] is False and document["timing"]["samples_us"] == []
        assert document["timing"]["source"] == "proto" and document["timing"]["p50_is"] == "median"
        assert document["timing"]["stats"]["count"] >= 20 and document["timing"]["stats"]["p90"] is None
        assert document["memory"]["peak_rss_after_runs"] > 1e6
        assert document["environment"]["android"]["soc"] == "GS201"
        assert document["settings"]["cpus"] == [0]  # run under taskset 1
        assert document["sources"]["accuracy"].startswith("host: ai_edge_litert")
        assert document["accuracy"]["total"] == 200 and document["accuracy"]["source"].startswith("host:")
    assert summary["device_probe"]["battery_c"] == 31.2


def test_profile_passes_the_flag_to_benchmark_model_and_reads_its_table_back(phone_run):
    _, second, folders = phone_run
    assert second.returncode == 0, second.stderr
    _, measurements = load_run(folders[1])
    int8 = next(m.document for m in measurements if m.variant == "int8" and m.round == 1)
    profile = int8["operators"]
    assert profile["source"].startswith("benchmark_model --enable_op_profiling")
    assert profile["format"] == "proto"  # the stand-in offers --op_profiling_output_mode, so the proto is read
    assert [row["index"] for row in profile["rows"]] == list(range(7))  # one row per node of MNIST's graph
    assert {row["on"] for row in profile["rows"]} == {"XNNPACK"} and sum(row["avg_ms"] for row in profile["rows"]) > 0
    assert "time: int8 per node (benchmark_model --enable_op_profiling" in " ".join(second.stdout.split())


def test_pushes_are_skipped_when_the_phone_has_the_same_sha256(phone_run):
    _first, second, folders = phone_run
    assert second.returncode == 0, second.stderr
    pushed = [json.loads((f / "run.json").read_text())["pushed_bytes"] for f in folders]
    assert pushed[0] > 3_000_000 and pushed[1] == 0


def test_a_comparison_of_two_phone_runs_says_it_used_statistics_only(phone_run):
    _, _, folders = phone_run
    compared = run_edgebench("compare", str(folders[0]), str(folders[1]))
    assert compared.returncode in (0, 1), compared.stderr
    assert "statistics only" in compared.stdout + compared.stderr


def test_devices_check_shows_the_phone_facts(phone):
    _, device = phone
    checked = run_edgebench("devices", "check", str(device))
    assert checked.returncode == 0, checked.stderr
    assert "GS201" in checked.stdout and "Android 14" in checked.stdout and "arm64-v8a" in checked.stdout


def test_exit_codes_streams_and_quoting_through_adb_shell(phone):
    _fake, device = phone
    with open_transport(load_device_file(device)) as transport:
        result = transport.run(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=30)
        assert (result.exit_code, result.stdout, result.stderr_tail) == (7, "out\n", ("err",))
        tricky = ["it's", "a $HOME", "`date`", '"quoted"', "semi;colon", "new\nline"]
        echoed = transport.run(["printf", "%s|", *tricky], timeout=30)
        assert echoed.stdout == "|".join(tricky) + "|"


def test_a_command_past_its_deadline_is_killed_on_the_phone(phone):
    _, device = phone
    marker = f"sleep 3{os.getpid() % 1000:03d}"
    with open_transport(load_device_file(device)) as transport:
        result = transport.run(["sh", "-c", marker], timeout=2)
        assert result.timed_out and result.exit_code is None
    assert wait_until(lambda: not process_running(marker), 10), "the timed-out command is still running on the phone"


def test_a_cancelled_command_leaves_nothing_running_on_the_phone(phone):
    _, device = phone
    marker = f"sleep 4{os.getpid() % 1000:03d}"
    with open_transport(load_device_file(device)) as transport:
        transport.cancel = threading.Event()
        threading.Timer(2.0, transport.cancel.set).start()
        with pytest.raises(Cancelled):
            transport.run(["sh", "-c", marker], timeout=60)
    assert wait_until(lambda: not process_running(marker), 10), "the cancelled command is still running on the phone"


def test_the_phone_works_in_a_farm_next_to_an_ssh_board(phone, ssh_host, tmp_path, variant_cache):
    _, device = phone
    board = ssh_host.device_file(tmp_path / "board.toml", workdir=str(tmp_path / "board-workdir"))
    farm = tmp_path / "farm.toml"
    farm.write_text(
        f'devices = ["{device}", "{board}"]\n[[models]]\nmodel = "mnist"\nvariants = ["float32", "int8"]\n'
        "[run]\nsamples = 100\nmin_runs = 20\nmin_seconds = 0.2\nwarmup_seconds = 0.1\nrounds = 1\n"
    )
    done = run_edgebench("farm", "run", str(farm), "--results-dir", str(tmp_path / "results"), "--cache-dir",
                         str(variant_cache), "--json")  # fmt: skip
    assert done.returncode in (0, 2), done.stderr  # 2: a first night has no baseline to judge by
    report = json.loads(done.stdout)
    states = {d["name"]: d["state"] for d in report["devices"]}
    assert states == {"phone": "done", "board": "done"}, report


def test_a_phone_leased_by_another_run_is_busy(phone, tmp_path, capfd):
    from edgebench.backends.benchmark_model import BenchmarkModelBackend
    from edgebench.run.lease import Owner

    _, device = phone
    other = Owner("another-run", "controller-b", 4242, "edgebench run")
    with open_transport(load_device_file(device)) as transport:
        backend = BenchmarkModelBackend(transport, "pixel7", load_device_file(device).benchmark_model)
        call = backend.lease_call(transport.workdir(), other, 600)
        assert call("acquire")["acquired"]
        try:
            done = run_main(capfd, "run", "--device", str(device), *QUICK, "--variants", "float32",
                                 "--results-dir", str(tmp_path / "results"))  # fmt: skip
            assert_one_line_error(done, "is in use by run another-run", "controller-b")
            again = call("acquire")  # the holder renews its own lease; the other run took nothing
            assert again["acquired"] and again["holder"]["id"] == "another-run"
        finally:
            assert call("release")["released"]


def test_a_phone_with_python_runs_the_agent_over_adb(phone, tmp_path, variant_cache):
    fake, _ = phone
    device = phone_file(tmp_path, fake, name="termux-like", top={"backend": '"python-agent"',
                                                                 "python": f'"{sys.executable}"'})  # fmt: skip
    done = run_edgebench("run", "--device", str(device), *QUICK, "--variants", "float32,int8",
                         "--results-dir", str(tmp_path / "results"), "--cache-dir", str(variant_cache))  # fmt: skip
    assert done.returncode == 0, done.stderr
    _, measurements = load_run(next((tmp_path / "results" / "termux-like").iterdir()))
    document = measurements[0].document
    assert document["timing"]["samples_us"] and "backend" not in document  # the agent's per-sample document
    assert document["accuracy"]["total"] == 200 and "source" not in document["accuracy"]  # measured on the device


# -- faults: one line each, exit 2 (the phone could not be used) or 1 (a run that measured less) -------------


@pytest.mark.parametrize("mode, words", [("unauthorized", "is unauthorized"), ("offline", "is offline")])
def test_a_phone_that_is_not_usable_is_one_line(adb_server, tmp_path, mode, words, capfd):
    fake = start_phone(tmp_path / "root", mode=mode)
    try:
        device = phone_file(tmp_path, fake, name=mode)
        done = run_main(capfd, "run", "--device", str(device), *QUICK, "--variants", "float32",
                             "--results-dir", str(tmp_path / "results"))  # fmt: skip
        assert_one_line_error(done, words, fake.serial)
        measured = [p for p in (tmp_path / "results").glob(f"{mode}/*/*.json") if p.name != "run.json"]
        assert not measured, "nothing was measured"
    finally:
        fake.stop()


def test_an_absent_phone_is_one_line(adb_server, tmp_path, capfd):
    fake = start_phone(tmp_path / "root")
    fake.stop()  # its port is closed now: nothing answers there
    device = phone_file(tmp_path, fake, name="absent")
    done = run_main(capfd, "run", "--device", str(device), *QUICK, "--variants", "float32",
                         "--results-dir", str(tmp_path / "results"))  # fmt: skip
    assert_one_line_error(done, "is not reachable: adb connect failed")


def test_no_adb_client_is_one_line(phone, tmp_path, capfd):
    fake, _ = phone
    device = phone_file(tmp_path, fake, name="noadb")
    device.write_text(device.read_text().replace("[adb]\n", '[adb]\nadb = "/nonexistent/adb"\n'))
    done = run_main(capfd, "run", "--device", str(device), *QUICK, "--variants", "float32",
                         "--results-dir", str(tmp_path / "results"))  # fmt: skip
    assert_one_line_error(done, "the adb client '/nonexistent/adb' is not installed", "apt-get install adb")


def test_a_binary_that_is_not_executable_is_one_line(phone, tmp_path, capfd):
    fake, _ = phone
    binary = fake.root / "data" / "local" / "tmp" / "benchmark_model_noexec"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_bytes(binary_wrapper(tmp_path).read_bytes())
    binary.chmod(0o644)
    device = phone_file(tmp_path, fake, name="noexec", benchmark_model={"device_path": f'"{binary}"'})
    done = run_main(capfd, "run", "--device", str(device), *QUICK, "--variants", "float32",
                         "--results-dir", str(tmp_path / "results"))  # fmt: skip
    assert_one_line_error(done, "is not executable", str(binary))


def test_a_full_phone_fails_the_model_that_does_not_fit_and_measures_the_rest(phone, tmp_path, variant_cache):
    fake, _ = phone
    workdir = tmp_path / "small"
    workdir.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(workdir)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        device = phone_file(tmp_path, fake, name="full", workdir=workdir)
        done = run_edgebench("run", "--device", str(device), *QUICK, "--variants", "float32,int8",
                             "--results-dir", str(tmp_path / "results"), "--cache-dir", str(variant_cache))  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "float32 failed: device 'full' is out of disk space" in done.stdout
        _summary, measurements = load_run(next((tmp_path / "results" / "full").iterdir()))
        assert {m.variant: m.status for m in measurements} == {"float32": "failed", "int8": "ok"}
    finally:
        # Lazy: a phone shell may still be in it, and a busy mount left behind breaks the next temp-folder clean-up.
        subprocess.run(["umount", "--lazy", str(workdir)], capture_output=True)


def test_a_phone_that_drops_off_mid_run_ends_it_with_what_was_measured(adb_server, tmp_path, variant_cache):
    fake = start_phone(tmp_path / "root", env={"EDGEBENCH_STANDIN_HANG": "25"})
    device = phone_file(tmp_path, fake)
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "edgebench", "run", "--device", str(device), *QUICK, "--variants", "float32,int8",
             "--results-dir", str(tmp_path / "results"), "--cache-dir", str(variant_cache)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # The binary's own command line: measuring, not staging or probing (those paths hold by-sha256/ too).
        assert wait_until(lambda: process_running(f"--graph={fake.root}"), 60), run.kill() or run.communicate()
        fake.unplug()
        started = time.monotonic()
        out, err = run.communicate(timeout=120)
        assert time.monotonic() - started < 30
        assert run.returncode == 1, err
        assert "float32 failed: device 'phone'" in out and "went away" in out
        assert "int8 failed: not measured" in out
        assert (next((tmp_path / "results" / "phone").iterdir()) / "run.json").is_file()
    finally:
        fake.stop()


def test_a_frozen_phone_ends_the_run_and_its_watchdog_kills_the_binary(adb_server, tmp_path, variant_cache):
    fake = start_phone(tmp_path / "root", env={"EDGEBENCH_STANDIN_HANG": "60"})
    device = phone_file(tmp_path, fake)
    marker = f"--graph={fake.root}"
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "edgebench", "run", "--device", str(device), *QUICK, "--variants", "float32,int8",
             "--timeout", "10", "--results-dir", str(tmp_path / "results"), "--cache-dir", str(variant_cache)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert wait_until(lambda: process_running(marker), 60)
        launched = time.monotonic()
        fake.freeze()
        out, err = run.communicate(timeout=120)
        assert time.monotonic() - launched < 45  # the 10 s deadline, one 10 s liveness check, no per-variant waits
        assert run.returncode == 1, err
        assert "stopped answering" in out and "int8 failed: not measured" in out
        fake.thaw()
        # The phone's own watchdog: the binary dies at its deadline + 30 s even though the host gave up on it.
        assert wait_until(lambda: not process_running(marker), 60), "the benchmark binary outlived its watchdog"
    finally:
        fake.stop()


def test_a_frozen_phone_is_a_stall_long_before_the_timeout(adb_server, tmp_path, variant_cache):
    """The default 30-minute --timeout left in place: the phone beats while benchmark_model runs, so its silence
    is seen after --stall-timeout, as on every other backend."""
    fake = start_phone(tmp_path / "root", env={"EDGEBENCH_STANDIN_HANG": "60"})
    device = phone_file(tmp_path, fake)
    marker = f"--graph={fake.root}"
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "edgebench", "run", "--device", str(device), *QUICK, "--variants", "float32,int8",
             "--stall-timeout", "8", "--results-dir", str(tmp_path / "results"), "--cache-dir", str(variant_cache)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert wait_until(lambda: process_running(marker), 60)
        frozen = time.monotonic()
        fake.freeze()
        out, err = run.communicate(timeout=300)
        assert time.monotonic() - frozen < 8 + 30, "the frozen phone was waited on past the stall timeout + 30 s"
        assert run.returncode == 1, err
        assert "stopped answering" in out and "sent nothing for 8s (stalled)" in out, out
        assert "int8 failed: not measured" in out
    finally:
        fake.stop()


def test_short_commands_on_a_frozen_phone_raise_instead_of_hanging(adb_server, tmp_path):
    fake = start_phone(tmp_path / "root")
    device = load_device_file(phone_file(tmp_path, fake))
    try:
        with open_transport(device) as transport:
            transport.shell("true")
            fake.freeze()
            started = time.monotonic()
            with pytest.raises((Unreachable, ConnectionLost, DeviceError)):
                transport.shell("true", timeout=3)
            assert time.monotonic() - started < 30
    finally:
        fake.stop()


def test_an_unknown_adb_key_is_named(tmp_path, capfd):
    device = tmp_path / "typo.toml"
    device.write_text('transport = "adb"\n[adb]\nserial = "x"\nserail = "y"\n[benchmark_model]\ndevice_path = "/b"\n')
    done = run_main(capfd, "devices", "check", str(device))
    assert_one_line_error(done, "adb.serail")


def test_a_benchmark_model_device_needs_a_binary(tmp_path, capfd):
    device = tmp_path / "nobinary.toml"
    device.write_text('transport = "adb"\n[adb]\nserial = "R58M1234"\n')
    done = run_main(capfd, "devices", "check", str(device))
    assert_one_line_error(done, "needs [benchmark_model] path", "--benchmark-binary")


def test_the_shipped_pixel7_file_is_valid():
    device = load_device_file(Path(__file__).resolve().parent.parent / "devices" / "pixel7.toml")
    assert device.transport == "adb" and device.backend == "benchmark_model" and device.settings["cpus"]


def test_benchmark_model_runs_over_ssh_too(ssh_host, tmp_path, variant_cache):
    """A Termux phone without a runtime, reached over SSH: the backend needs only a shell, which every transport has."""
    device = ssh_host.device_file(tmp_path / "ssh-phone.toml", workdir=str(tmp_path / "workdir"))
    with device.open("a") as f:
        f.write(f'backend = "benchmark_model"\n[benchmark_model]\npath = "{binary_wrapper(tmp_path)}"\n')
    done = run_edgebench("run", "--device", str(device), *QUICK, "--variants", "float32,int8",
                         "--results-dir", str(tmp_path / "results"), "--cache-dir", str(variant_cache))  # fmt: skip
    assert done.returncode == 0, done.stderr
    _, measurements = load_run(next((tmp_path / "results" / "ssh-phone").iterdir()))
    assert [m.document["backend"] for m in measurements] == ["benchmark_model"] * 2
    assert measurements[0].document["timing"]["source"] == "proto"  # read back through the SSH shell


def test_the_devices_accelerator_reaches_benchmark_model_and_its_delegation_is_read_back(phone, tmp_path,
                                                                                         variant_cache):  # fmt: skip
    """accelerator = "gpu" passes --use_gpu=true; the binary's "Replacing N out of M node(s)" and fallback lines
    become the placement (the STAND-IN binary prints them as the real one does; it has no GPU)."""
    _, device = phone
    done = run_edgebench(
        "run", "--device", str(device), *QUICK, "--variants", "float32,int8", "--accelerator", "gpu",
        "--results-dir", str(tmp_path), "--cache-dir", str(variant_cache),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "placement: TfLiteGpuDelegateV2 took every node of float32" in said
    assert "placement: int8: Falling back to the CPU for the whole graph" in said
    _, measurements = load_run(next(tmp_path.glob("phone/*")))
    float32 = next(m for m in measurements if m.variant == "float32").document
    assert float32["settings"]["accelerator"] == "gpu"
    assert float32["placement"]["delegate"] == "TfLiteGpuDelegateV2" and float32["placement"]["asked"] == "gpu"
    assert float32["placement"]["delegated"] == float32["placement"]["nodes"] > 0


def test_delegation_and_fallback_lines_are_parsed():
    from edgebench.backends.benchmark_output import parse_output

    figures = parse_output(
        "INFO: Replacing 9 out of 11 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 2 partitions "
        "for the whole graph.\nWARNING: Falling back to OpenGL\nINFO: count=5 first=1 curr=1 min=1 max=2 avg=1.2 "
        "std=0\n"
    )
    assert figures.delegation == [{"delegate": "TfLiteGpuDelegateV2", "delegated": 9, "nodes": 11, "partitions": 2}]
    assert figures.fallbacks == ["Falling back to OpenGL"]


def test_the_accelerator_settings_become_each_benchmark_tools_flags_and_the_placement_says_what_was_asked():
    """benchmark_model: npu + nnapi_accelerator -> --use_nnapi=true --nnapi_accelerator_name=...; gpu + gpu_precision
    fp32 -> --gpu_precision_loss_allowed=false. LiteRT's benchmark_litert_model (its --help has --use_npu):
    --use_gpu=true / --use_npu=true, --allow_fp16=false; its Python edition (--result_json): --model and switches.
    The placement records what was asked beside what the log said."""
    from edgebench.backends.benchmark_model import BenchmarkBinary, BenchmarkModelBackend, delegation_placement
    from edgebench.backends.benchmark_output import parse_output
    from edgebench.core.settings import resolve

    backend = BenchmarkModelBackend(None, "phone", BenchmarkBinary(device_path="/data/local/tmp/bm"))
    npu = resolve({"accelerator": "npu", "nnapi_accelerator": "qti-dsp"})
    argv = backend.command("/m.tflite", npu, None)
    assert "--use_nnapi=true" in argv and "--nnapi_accelerator_name=qti-dsp" in argv and "--use_gpu=true" not in argv
    gpu = resolve({"accelerator": "gpu", "gpu_precision": "fp32", "nnapi_accelerator": "qti-dsp"})
    argv = backend.command("/m.tflite", gpu, None)
    assert "--gpu_precision_loss_allowed=false" in argv and not any("nnapi" in a for a in argv)
    assert "--gpu_precision_loss_allowed=false" not in backend.command("/m.tflite", resolve({"accelerator": "gpu"}),
                                                                       None)  # fmt: skip
    figures = parse_output(
        "INFO: Replacing 7 out of 7 node(s) with delegate (TfLiteNnapiDelegate) node, yielding 1 "
        "partitions for the whole graph.\nINFO: count=5 first=1 curr=1 min=1 max=2 avg=1.2 std=0\n"
    )
    placement = delegation_placement(figures, npu)
    assert placement["asked"] == "npu" and placement["nnapi_accelerator"] == "qti-dsp"
    assert placement["delegate"] == "TfLiteNnapiDelegate" and placement["delegated"] == 7

    backend.facts = {"binary_tool": "benchmark_litert_model"}
    argv = backend.command("/m.tflite", gpu, "/w/r.pb")
    assert argv[:2] == ["/data/local/tmp/bm", "--graph=/m.tflite"] and "--use_gpu=true" in argv
    assert "--allow_fp16=false" in argv and "--result_file_path=/w/r.pb" in argv
    assert not any(a.startswith(("--use_nnapi", "--use_xnnpack")) for a in argv)  # TFLite delegates: not its flags
    assert "--use_npu=true" in backend.command("/m.tflite", npu, None)
    backend.facts = {"binary_tool": "benchmark_litert_model.py"}
    argv = backend.command("/m.tflite", resolve({"accelerator": "gpu", "cpus": (1,)}), "/w/r.json")
    assert argv[:3] == ["taskset", "2", "/data/local/tmp/bm"] and "--model=/m.tflite" in argv
    assert "--use_gpu" in argv and "--result_json=/w/r.json" in argv and not any("secs" in a for a in argv)
