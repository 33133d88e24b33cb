"""SSH devices against a real OpenSSH sshd: runs, the push cache, host keys and every failure."""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgebench.emulated.sshd import keygen, make_host
from edgebench.results.store import load_run
from tests.helpers import assert_one_line_error, run_edgebench, run_main

QUICK = ["--min-runs", "10", "--min-seconds", "0.1", "--warmup-seconds", "0", "--rounds", "1"]


@pytest.fixture
def home(tmp_path):
    """An empty HOME, so the user's own ~/.ssh/known_hosts plays no part."""
    folder = tmp_path / "home"
    folder.mkdir()
    return {**os.environ, "HOME": str(folder)}


def edgebench_run(device, results, cache, *extra, env=None, variants="float32,int8", samples="300"):
    return run_edgebench(
        "run", "--device", str(device), "--model", "mnist", "--variants", variants, "--samples", samples,
        *QUICK, "--results-dir", str(results), "--cache-dir", str(cache), *extra, env=env,
    )  # fmt: skip


def run_folders(results):
    return sorted(p for p in results.glob("*/*") if p.is_dir())


def keys_of(value, prefix=""):
    """Every key path of a JSON document, for comparing shapes."""
    if isinstance(value, dict):
        paths = set()
        for key, item in value.items():
            if prefix == ".environment.cpufreq" or prefix == ".thermal.zones_after":
                key = "*"  # one entry per CPU or zone: their number differs by machine
            paths |= {f"{prefix}.{key}"} | keys_of(item, f"{prefix}.{key}")
        return paths
    return set()


def test_a_run_over_ssh_has_the_shape_of_a_local_run(ssh_host, tmp_path, variant_cache, home):
    device = ssh_host.device_file(tmp_path / "pi-on-loopback.toml")
    completed = edgebench_run(device, tmp_path / "ssh-results", variant_cache, "--json", env=home)
    assert completed.returncode == 0, completed.stderr
    local = edgebench_run("local", tmp_path / "local-results", variant_cache, "--json", env=home)
    assert local.returncode == 0, local.stderr

    over_ssh, here = json.loads(completed.stdout), json.loads(local.stdout)
    assert over_ssh["run"]["device"]["transport"] == "ssh"
    assert [v["status"] for v in over_ssh["variants"]] == ["ok", "ok"]
    assert [set(v) for v in over_ssh["variants"]] == [set(v) for v in here["variants"]]
    (ssh_folder,) = run_folders(tmp_path / "ssh-results")
    (local_folder,) = run_folders(tmp_path / "local-results")
    assert sorted(p.name for p in ssh_folder.iterdir()) == sorted(p.name for p in local_folder.iterdir())
    for name in ("float32.json", "int8.json"):
        ssh_doc = json.loads((ssh_folder / name).read_text())
        local_doc = json.loads((local_folder / name).read_text())
        assert keys_of(ssh_doc) - {".settings.dataset"} == keys_of(local_doc) - {".settings.dataset"}
        # The same model bytes and the same data: the same predictions.
        assert ssh_doc["accuracy"]["predictions"] == local_doc["accuracy"]["predictions"]
    assert over_ssh["run"]["device_probe"]["runtime"]["name"] == "ai_edge_litert"


@pytest.mark.slow
def test_a_second_run_pushes_no_model_bytes(ssh_host, tmp_path, variant_cache, home):
    device = ssh_host.device_file(tmp_path / "cached.toml", workdir=str(tmp_path / "fresh-workdir"))
    first = edgebench_run(device, tmp_path / "results", variant_cache, env=home)
    assert first.returncode == 0, first.stderr
    second = edgebench_run(device, tmp_path / "results", variant_cache, env=home)
    assert second.returncode == 0, second.stderr
    pushed = [load_run(folder)[0]["pushed_bytes"] for folder in run_folders(tmp_path / "results")]
    # float32 13.1 MB + int8 3.3 MB + test set + agent the first time; nothing the second.
    assert pushed[0] > 16_000_000 and pushed[1] == 0
    assert "pushed 0 bytes" in second.stderr
    # Files land under their content hash, with no partial uploads left behind.
    stored = list((tmp_path / "fresh-workdir" / "by-sha256").rglob("*"))
    assert not [p for p in stored if ".part-" in p.name]
    assert {p.name for p in stored if p.is_file()} >= {"agent.py", "mnist_test.npz"}


def test_an_unknown_host_key_is_refused_with_its_fingerprint(ssh_host, tmp_path, variant_cache, home):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    device = ssh_host.device_file(tmp_path / "new.toml", known_hosts=str(empty))
    completed = edgebench_run(device, tmp_path / "results", variant_cache, env=home)
    assert_one_line_error(completed, "unknown host key for", ssh_host.fingerprint(), "edgebench devices trust new")
    # Nothing was measured, and the run folder says why.
    (folder,) = run_folders(tmp_path / "results")
    summary, measurements = load_run(folder)
    assert summary["status"] == "failed" and "unknown host key" in summary["error"] and measurements == []

    trusted = edgebench_run(device, tmp_path / "results", variant_cache, "--trust-new-host", env=home)
    assert trusted.returncode == 0, trusted.stderr
    assert empty.read_text() == ssh_host.known_hosts_line
    again = edgebench_run(device, tmp_path / "results", variant_cache, env=home)  # now known: no flag needed
    assert again.returncode == 0, again.stderr


def test_devices_trust_records_the_key_once(ssh_host, tmp_path, home):
    known = tmp_path / "known_hosts"
    device = ssh_host.device_file(tmp_path / "board.toml", known_hosts=str(known))
    first = run_edgebench("devices", "trust", str(device), env=home)
    assert first.returncode == 0, first.stderr
    assert f"recorded ssh-ed25519 {ssh_host.fingerprint()}" in first.stderr
    second = run_edgebench("devices", "trust", str(device), env=home)
    assert "already trusted" in second.stderr
    assert known.read_text() == ssh_host.known_hosts_line


def test_a_changed_host_key_is_always_refused(ssh_host, tmp_path, variant_cache, home):
    impostor = keygen(tmp_path / "impostor_key")
    key_type, key_data = (tmp_path / "impostor_key.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[{ssh_host.address}]:{ssh_host.port} {key_type} {key_data}\n")
    device = ssh_host.device_file(tmp_path / "changed.toml", known_hosts=str(known))
    for extra in ([], ["--trust-new-host"]):
        completed = edgebench_run(device, tmp_path / "results", variant_cache, *extra, env=home)
        assert_one_line_error(completed, "HOST KEY CHANGED", ssh_host.fingerprint(), "refusing to connect")
    assert impostor.exists() and known.read_text().count("\n") == 1


def test_a_wrong_key_fails_authentication(ssh_host, tmp_path, variant_cache, home):
    stranger = keygen(tmp_path / "stranger_key")
    device = ssh_host.device_file(tmp_path / "wrong-key.toml", identity_file=str(stranger))
    completed = edgebench_run(device, tmp_path / "results", variant_cache, env=home)
    assert_one_line_error(completed, "authentication failed for", str(stranger))


@pytest.mark.parametrize("key_format", ["openssh-ed25519", "pem-rsa"])
def test_an_encrypted_key_is_named_and_works_through_ssh_agent(ssh_host, tmp_path, home, key_format):
    """A passphrase-protected key (OpenSSH's own format, and the PEM RSA paramiko misreads as "expected OPENSSH
    key"): without an agent, one line saying it is encrypted and what to do; loaded into a real ssh-agent, it
    logs in."""
    if not (shutil.which("ssh-agent") and shutil.which("ssh-add")):
        pytest.skip("ssh-agent is not installed (openssh-client)")
    key = tmp_path / "deploy_key"
    kind = ["-t", "ed25519"] if key_format == "openssh-ed25519" else ["-t", "rsa", "-b", "2048", "-m", "PEM"]
    subprocess.run(["ssh-keygen", "-q", *kind, "-N", "s3cret-phrase", "-f", str(key)], check=True)
    with open(ssh_host.folder / "authorized_keys", "a") as authorized:
        authorized.write((tmp_path / "deploy_key.pub").read_text())
    device = ssh_host.device_file(tmp_path / "encrypted.toml", identity_file=str(key))
    no_agent = {k: v for k, v in home.items() if k != "SSH_AUTH_SOCK"}
    refused = run_edgebench("devices", "check", str(device), env=no_agent)
    said = " ".join(refused.stdout.split())
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"problem: cannot log in to {getpass.getuser()}@" in said
    assert f"the key {key} is encrypted (passphrase-protected)" in said and f"'ssh-add {key}'" in said
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        askpass = tmp_path / "askpass.sh"
        askpass.write_text("#!/bin/sh\necho s3cret-phrase\n")
        askpass.chmod(0o700)
        with_agent = {**no_agent, "SSH_AUTH_SOCK": str(socket_path)}
        added = subprocess.run(["ssh-add", str(key)], env={**with_agent, "SSH_ASKPASS": str(askpass),
                               "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True)  # fmt: skip
        assert added.returncode == 0, added.stderr
        checked = run_edgebench("devices", "check", str(device), env=with_agent)
        assert checked.returncode == 0, checked.stderr
    finally:
        agent.kill()
        agent.wait()


def test_connection_refused(ssh_host, tmp_path, variant_cache, home):
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    device = ssh_host.device_file(tmp_path / "off.toml", port=port)
    completed = edgebench_run(device, tmp_path / "results", variant_cache, env=home)
    assert_one_line_error(completed, f"cannot connect to 127.0.0.1:{port}: connection refused")


def test_a_host_that_accepts_and_never_answers_times_out(ssh_host, tmp_path, variant_cache, home):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    accepted = []
    stop = threading.Event()

    def accept_and_stay_silent():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    try:
        device = ssh_host.device_file(tmp_path / "silent.toml", port=listener.getsockname()[1], connect_timeout=2)
        started = time.monotonic()
        completed = edgebench_run(device, tmp_path / "results", variant_cache, env=home)
        assert time.monotonic() - started < 60
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()
    assert_one_line_error(completed, "accepted the connection but did not speak SSH within 2s")


def test_an_unresolvable_host_name(ssh_host, tmp_path, monkeypatch):
    """A fake resolver stands in for DNS: these hosts may send no traffic beyond loopback."""
    from edgebench.devices.connect import open_transport
    from edgebench.devices.inventory import load_device_file
    from edgebench.transport.base import DeviceError

    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    device = load_device_file(ssh_host.device_file(tmp_path / "pi4.toml", host="pi4.farm.example"))
    with pytest.raises(DeviceError, match=r"cannot resolve host name 'pi4\.farm\.example' of device 'pi4'"):
        open_transport(device).connect()


def test_remote_arguments_cannot_run_anything(ssh_host, tmp_path, mnist, variant_cache, home):
    """A model path with spaces, quotes, ; and $(...) reaches the agent as one argument."""
    marker = f"pwned-{secrets.token_hex(4)}"
    folder = tmp_path / "user models"
    folder.mkdir()
    evil = folder / f'it\'s a "model"; touch {marker}; $(touch {marker}) `touch {marker}`.tflite'
    shutil.copy(mnist.model_path, evil)
    device = ssh_host.device_file(tmp_path / "quoting.toml")
    completed = run_edgebench(
        "run", "--device", str(device), "--model", str(evil), "--variants", "float32", *QUICK,
        "--results-dir", str(tmp_path / "results"), "--cache-dir", str(variant_cache), "--json", env=home,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    (folder_run,) = run_folders(tmp_path / "results")
    agent_document = json.loads((folder_run / "float32.json").read_text())
    assert agent_document["model"]["path"].endswith(evil.name)  # the agent saw the whole name, intact
    assert document["variants"][0]["p50_ms"] > 0
    for place in (tmp_path, ssh_host.folder, Path.home(), Path(home["HOME"]), Path.cwd()):
        assert not list(place.glob(f"**/{marker}")), place


def test_a_killed_agent_is_reported_with_its_exit_and_stderr(ssh_host, tmp_path, variant_cache, home):
    """The device's Python survives the probe and the lease, then dies by SIGKILL as under the OOM killer."""
    doomed = tmp_path / "python-killed-while-measuring"
    doomed.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *--probe*|*--lease*) exec {sys.executable} "$@";; esac\n'
        "echo 'Out of memory: Killed process' >&2\n"
        "kill -KILL $$\n"
    )
    doomed.chmod(0o755)
    device = ssh_host.device_file(tmp_path / "oom.toml", python=str(doomed))
    completed = edgebench_run(device, tmp_path / "results", variant_cache, env=home)
    assert completed.returncode == 1 and "Traceback" not in completed.stderr
    out = " ".join(completed.stdout.split())
    assert "float32 failed: agent crashed (exit code 137 (signal SIGKILL)) without a result" in out
    assert "last stderr: Out of memory: Killed process" in out


@pytest.mark.slow
def test_sshd_stopped_in_the_middle_of_a_run(tmp_path, variant_cache, home):
    from edgebench.emulated.sshd import sshd_unavailable_reason

    if sshd_unavailable_reason():
        pytest.skip(sshd_unavailable_reason())
    host = make_host(tmp_path / "doomed-sshd").start()
    device = host.device_file(tmp_path / "dies.toml")
    results = tmp_path / "results"
    process = subprocess.Popen(
        [sys.executable, "-m", "edgebench", "run", "--device", str(device), "--model", "mnist",
         "--variants", "float32,dynamic-int8,int8", "--samples", "100", "--min-runs", "10", "--min-seconds", "6",
         "--results-dir", str(results), "--cache-dir", str(variant_cache)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=home,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(results.glob("*/*/float32.json")):
            time.sleep(0.2)
        time.sleep(1.5)  # dynamic-int8 is now measuring on the "board"
        host.stop()
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        host.stop()
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    (folder,) = run_folders(results)
    summary, measurements = load_run(folder)
    assert summary["status"] == "partial"
    assert [(m.variant, m.status) for m in measurements] == [
        ("float32", "ok"), ("dynamic-int8", "failed"), ("int8", "failed"),
    ]  # fmt: skip
    assert "connection to" in measurements[1].error and "lost" in measurements[1].error
    assert measurements[2].error.startswith("not measured:")
    assert measurements[0].document["timing"]["stats"]["count"] >= 10


class TestDevicesCheck:
    def test_a_working_device(self, ssh_host, tmp_path, home):
        device = ssh_host.device_file(tmp_path / "ok.toml")
        completed = run_edgebench("devices", "check", str(device), env=home)
        assert completed.returncode == 0, completed.stderr
        out = " ".join(completed.stdout.split())
        assert "ai_edge_litert 2.3.0" in out and "x86_64" in out and "can run the agent │ yes" in out

    def test_remote_python_missing(self, ssh_host, tmp_path, home):
        device = ssh_host.device_file(tmp_path / "nopython.toml", python="/opt/no/such/python3")
        completed = run_edgebench("devices", "check", str(device), env=home)
        assert completed.returncode == 1
        assert "the device's python '/opt/no/such/python3' was not found" in " ".join(completed.stdout.split())

    def test_no_tflite_runtime_on_the_device(self, ssh_host, tmp_path, variant_cache, home):
        blocker = tmp_path / "no-runtime"
        blocker.mkdir()
        (blocker / "sitecustomize.py").write_text(
            "import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('ai_edge_litert', 'tflite_runtime', 'tensorflow'):\n"
            "            raise ImportError(name + ' is not installed')\n"
            "sys.meta_path.insert(0, Block())\n"
        )
        device = ssh_host.device_file(tmp_path / "bare.toml", python=f"env PYTHONPATH={blocker} {sys.executable}")
        check = run_edgebench("devices", "check", str(device), env=home)
        assert check.returncode == 1
        assert "TFLite runtime │ missing" in " ".join(check.stdout.split())
        run = edgebench_run(device, tmp_path / "results", variant_cache, env=home)
        assert_one_line_error(run, "no TFLite runtime on device 'bare'", "edgebench devices setup bare")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 6 MB filesystem for the board's workdir: the test set and int8 fit, float32 does not."""
    folder = tmp_path / "tiny-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_remote_disk_fails_the_model_that_does_not_fit(ssh_host, tmp_path, tiny_disk, variant_cache, home):
    device = ssh_host.device_file(tmp_path / "small-sd-card.toml", workdir=str(tiny_disk))
    completed = edgebench_run(device, tmp_path / "results", variant_cache, "--json", env=home, variants="int8,float32")
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    variants = {v["name"]: v for v in json.loads(completed.stdout)["variants"]}
    assert variants["int8"]["status"] == "ok"
    error = variants["float32"]["error"]
    assert error.startswith("device 'small-sd-card' is out of disk space in ") and "13,101,984 bytes needed" in error
    assert not [p for p in tiny_disk.rglob("*") if ".part-" in p.name]  # the partial upload was removed


def test_ssh_config_aliases_users_ports_keys_and_proxyjump_are_honoured(ssh_host, tmp_path, home):
    """The device file names only an alias; ~/.ssh/config says where it is and that it is reached through a
    bastion (a second real sshd), whose host key is verified like the board's."""
    bastion = make_host(tmp_path / "bastion").start()
    try:
        ssh_dir = Path(home["HOME"]) / ".ssh"
        ssh_dir.mkdir()
        (ssh_dir / "known_hosts").write_text(ssh_host.known_hosts_line + bastion.known_hosts_line)
        (ssh_dir / "config").write_text(
            f"Host lab-board\n  HostName 127.0.0.1\n  Port {ssh_host.port}\n  User {getpass.getuser()}\n"
            f"  IdentityFile {ssh_host.client_key}\n  ProxyJump lab-bastion\n\n"
            f"Host lab-bastion\n  HostName 127.0.0.1\n  Port {bastion.port}\n  User {getpass.getuser()}\n"
            f"  IdentityFile {bastion.client_key}\n"
        )
        device = tmp_path / "aliased.toml"
        device.write_text(f'transport = "ssh"\npython = "{sys.executable}"\nworkdir = "{tmp_path / "wd"}"\n'
                          '[ssh]\nhost = "lab-board"\nconnect_timeout = 5\n')  # fmt: skip
        checked = run_edgebench("devices", "check", str(device), env=home)
        assert checked.returncode == 0, checked.stderr + checked.stdout
        assert "yes" in checked.stdout.split("can run the agent")[1].splitlines()[0]
        assert "Accepted publickey" in (bastion.folder / "sshd.log").read_text()
        # An unknown bastion key is refused like any other.
        (ssh_dir / "known_hosts").write_text(ssh_host.known_hosts_line)
        refused = run_edgebench("devices", "check", str(device), env=home)
        assert refused.returncode == 1 and "unknown host key" in refused.stdout
        # Without the bastion the board cannot be reached: the connection went through it.
        (ssh_dir / "known_hosts").write_text(ssh_host.known_hosts_line + bastion.known_hosts_line)
        bastion.stop()
        unreachable = run_edgebench("devices", "check", str(device), env=home)
        assert unreachable.returncode == 1
        assert "(jump host lab-bastion): connection refused" in " ".join(unreachable.stdout.split())
    finally:
        bastion.stop()


def test_a_device_file_with_both_a_flat_and_a_sectioned_key_is_refused(tmp_path, capfd):
    device = tmp_path / "twice.toml"
    device.write_text('transport = "ssh"\nhost = "a"\n[ssh]\nhost = "b"\n')
    completed = run_main(capfd, "run", "--device", str(device), "--model", "mnist")
    assert_one_line_error(completed, "twice.toml: key 'host' is given both at the top level and in [ssh]")
    device.write_text('transport = "local"\n[ssh]\nhost = "b"\n')
    assert_one_line_error(run_main(capfd, "run", "--device", str(device), "--model", "mnist"),
                          "section [ssh] does not apply to transport 'local'")  # fmt: skip
    device.write_text('transport = "ssh"\n[ssh]\nhost = "b"\nprot = 22\n')
    assert_one_line_error(run_main(capfd, "run", "--device", str(device), "--model", "mnist"), "unknown key 'ssh.prot'")
