"""Building blocks of the across-labs tests: a real redis-server, lab workers as processes, a submitter."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from edgebench.emulated.sshd import free_port
from tests.farm_helpers import wait_for

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """Debian's redis-server on 127.0.0.1, a random port, its own data folder, the append-only file on: the
    broker a lab farm uses, restartable from what it persisted."""

    def __init__(self, folder: Path, password: str | None = None, tls: bool = False):
        if not Path(REDIS_SERVER).exists():
            pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
        self.folder, self.password, self.tls = folder, password, tls
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        if tls:
            make_tls_files(self.folder)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                   "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                   "--logfile", str(self.folder / "redis.log")]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        if self.tls:
            command[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            command += ["--tls-cert-file", str(self.folder / "server.pem"), "--tls-key-file",
                        str(self.folder / "server.key"), "--tls-ca-cert-file", str(self.folder / "ca.pem"),
                        "--tls-auth-clients", "no"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, 20, f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
            return bool(self.client().ping())
        except (OSError, redis.RedisError):
            return False

    def client(self) -> redis.Redis:
        tls = {"ssl": True, "ssl_ca_certs": str(self.folder / "ca.pem")} if self.tls else {}
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5, **tls)

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown; only what the append-only file holds comes back."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def make_tls_files(folder: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=edgebench test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
            "/CN=127.0.0.1")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "server.pem", "-days", "2", "-extfile", "san.ext")  # fmt: skip


def lab_env(tmp_path: Path, lab: str) -> dict:
    """Each lab its own HOME and host locks, as separate hosts would have."""
    home = tmp_path / "hosts" / lab
    return {**os.environ, "HOME": str(home), "EDGEBENCH_LOCK_DIR": str(home / "locks"), "PYTHONUNBUFFERED": "1"}


def local_device(devices: Path, name: str) -> Path:
    """A device measured on this host, under its own name (each lab has its own 'local' board)."""
    devices.mkdir(parents=True, exist_ok=True)
    path = devices / f"{name}.toml"
    path.write_text(f'transport = "local"\ndescription = "{name}: this host"\nthreads = 1\ntags = ["host"]\n')
    return path


class WorkerProcess:
    """`edgebench worker` as its own process, its log kept for the test's messages."""

    def __init__(self, tmp_path: Path, lab: str, devices: Path, url: str, cache: Path, lease_ttl: float = 4.0):
        self.lab, self.log = lab, tmp_path / f"worker-{lab}.log"
        self.results = tmp_path / "hosts" / lab / "results"
        self.command = [sys.executable, "-m", "edgebench", "worker", "--lab", lab, "--devices", str(devices),
                        "--broker", url, "--results-dir", str(self.results), "--cache-dir", str(cache),
                        "--lease-ttl", str(lease_ttl)]  # fmt: skip
        self.env = lab_env(tmp_path, lab)
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            start_new_session=True)  # fmt: skip
        wait_for(lambda: "serving lab" in self.text() or self.process.poll() is not None, 60, f"worker {self.lab}")
        assert self.process.poll() is None, self.text()
        return self

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the worker only (its agents are orphaned, as when a lab host's edgebench is killed)."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 60) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                return self.process.wait(10)
        return self.process.returncode if self.process else 0


def edgebench(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebench", *args], capture_output=True, text=True,
                          env=env or os.environ.copy(), timeout=timeout)  # fmt: skip


def wait_until(predicate, timeout: float, what: str):
    return wait_for(predicate, timeout, what)


def sleep(seconds: float) -> None:
    time.sleep(seconds)
