"""FAKE adbd, a test double: a "phone" that speaks the real ADB wire protocol on loopback.

There is no phone, emulator or device-side adbd package here, so the ADB transport is tested
against this: the stock `adb` client and server (Debian's package) connect to it with
`adb connect 127.0.0.1:PORT` and drive it exactly as they drive a phone over TCP. What it
implements is what that client uses:

- CNXN with a banner advertising `shell_v2,cmd` (so the client uses shell protocol v2 and the
  legacy sync STAT/SEND), or AUTH tokens that are never accepted (--unauthorized), or no
  answer at all (--offline);
- streams: OPEN / OKAY / WRTE / CLSE with one outstanding WRTE per direction (protocol v1 flow
  control);
- `shell,v2,...:COMMAND`: COMMAND runs under `sh -c` on this host, in the "device root"
  folder, with the root's bin/ first on PATH (where tests put stand-ins for getprop and
  dumpsys); stdout, stderr and the exit code go back as shell-v2 packets as they come;
- `sync:` with STAT, SEND/DATA/DONE and QUIT (what `adb push` sends); a write error such as a
  full disk is answered with FAIL and the OS's message, as adbd does.

Like an adbd that loses its client, it does not kill what a shell started when the stream or
connection closes: cleaning up is the host's job, which is what the tests check. A frozen
phone is this process SIGSTOPped; a phone that drops off the network is it killed.

    python tests/fake_adbd.py --port PORT --root DIR [--unauthorized | --offline]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import struct
import sys

A_SYNC, A_CNXN, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_AUTH = (
    int.from_bytes(name, "little") for name in (b"SYNC", b"CNXN", b"OPEN", b"OKAY", b"CLSE", b"WRTE", b"AUTH")
)
VERSION = 0x01000001
MAX_PAYLOAD = 256 * 1024
BANNER = (
    b"device::ro.product.name=edgebench_fake;ro.product.model=FAKE adbd (test double);"
    b"ro.product.device=fake;features=shell_v2,cmd"
)
SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN = 1, 2, 3, 4


def message(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    checksum = sum(data) & 0xFFFFFFFF
    return struct.pack("<6I", command, arg0, arg1, len(data), checksum, command ^ 0xFFFFFFFF) + data


def sync_fail(message: bytes) -> bytes:
    """A sync FAIL reply: the id, the message's length, the message."""
    return b"FAIL" + struct.pack("<I", len(message)) + message


class Stream:
    """One OPENed service: sends its WRTEs one at a time, each after the client's OKAY of the last."""

    def __init__(self, connection: Connection, local: int, remote: int):
        self.connection, self.local, self.remote = connection, local, remote
        self.pending: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.acked = asyncio.Event()
        self.acked.set()
        self.received: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.sender = asyncio.create_task(self._send_loop())

    async def _send_loop(self) -> None:
        while True:
            data = await self.pending.get()
            if data is None:
                break
            for start in range(0, len(data), MAX_PAYLOAD):
                await self.acked.wait()
                self.acked.clear()
                self.connection.write(message(A_WRTE, self.local, self.remote, data[start : start + MAX_PAYLOAD]))
        await self.acked.wait()
        self.connection.write(message(A_CLSE, self.local, self.remote))
        self.connection.streams.pop(self.local, None)

    def send(self, data: bytes) -> None:
        self.pending.put_nowait(data)

    def close(self) -> None:
        self.pending.put_nowait(None)


class Connection:
    def __init__(self, reader, writer, root: str, mode: str):
        self.reader, self.writer, self.root, self.mode = reader, writer, root, mode
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.tasks: set[asyncio.Task] = set()  # held until done: the event loop keeps only weak references

    def spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def serve(self) -> None:
        while True:
            try:
                header = await self.reader.readexactly(24)
                command, arg0, arg1, length, _, _ = struct.unpack("<6I", header)
                data = await self.reader.readexactly(length) if length else b""
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            await self.handle(command, arg0, arg1, data)

    async def handle(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == A_CNXN:
            if self.mode == "offline":
                return  # never answers: the client lists the device as offline
            if self.mode == "unauthorized":
                self.write(message(A_AUTH, 1, 0, os.urandom(20)))  # a token to sign; no key is ever accepted
                return
            self.write(message(A_CNXN, VERSION, MAX_PAYLOAD, BANNER))
        elif command == A_AUTH:
            if arg0 == 2:  # a signature: refused, so ask again; the client then offers its public key
                self.write(message(A_AUTH, 1, 0, os.urandom(20)))
        elif command == A_OPEN:
            local, self.next_id = self.next_id, self.next_id + 1
            stream = Stream(self, local, arg0)
            self.streams[local] = stream
            self.write(message(A_OKAY, local, arg0))
            service = data.rstrip(b"\0").decode()
            if service.startswith("shell"):
                self.spawn(self.shell(stream, service))
            elif service.startswith("sync:"):
                self.spawn(self.sync(stream))
            else:
                stream.close()
        elif command == A_OKAY:
            stream = self.streams.get(arg1)
            if stream:
                stream.acked.set()
        elif command == A_WRTE:
            stream = self.streams.get(arg1)
            if stream:
                self.write(message(A_OKAY, arg1, arg0))
                stream.received.put_nowait(data)
        elif command == A_CLSE:
            stream = self.streams.pop(arg1, None)
            if stream:
                stream.received.put_nowait(None)
                stream.acked.set()
                stream.sender.cancel()

    async def shell(self, stream: Stream, service: str) -> None:
        """shell,v2,raw:COMMAND (or shell:COMMAND) under sh -c, packets streamed as they come."""
        options, _, command = service.partition(":")
        v2 = "v2" in options.split(",")
        env = dict(os.environ, PATH=f"{self.root}/bin:{os.environ.get('PATH', '/usr/bin:/bin')}")
        process = await asyncio.create_subprocess_exec(
            "sh", "-c", command or "true", cwd=self.root, env=env, start_new_session=True,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

        def packet(kind: int, data: bytes) -> bytes:
            return bytes([kind]) + struct.pack("<I", len(data)) + data if v2 else data

        async def pump(pipe, kind):
            while chunk := await pipe.read(65536):
                stream.send(packet(kind, chunk))

        await asyncio.gather(pump(process.stdout, SHELL_STDOUT), pump(process.stderr, SHELL_STDERR))
        code = await process.wait()
        if v2:
            stream.send(packet(SHELL_EXIT, bytes([code & 0xFF])))
        stream.close()

    async def sync(self, stream: Stream) -> None:
        """STAT, SEND/DATA/DONE, QUIT: what `adb push` sends (no stat_v2 or sendrecv_v2 advertised)."""
        buffer = bytearray()

        async def read(count: int) -> bytes | None:
            while len(buffer) < count:
                chunk = await stream.received.get()
                if chunk is None:
                    return None
                buffer.extend(chunk)
            data = bytes(buffer[:count])
            del buffer[:count]
            return data

        while True:
            header = await read(8)
            if header is None:
                return
            request, length = header[:4], struct.unpack("<I", header[4:])[0]
            if request == b"QUIT":
                stream.close()
                return
            path = (await read(length) or b"").decode()
            if request == b"STAT":
                try:
                    info = os.stat(path)
                    stream.send(
                        b"STAT" + struct.pack("<3I", info.st_mode, info.st_size & 0xFFFFFFFF, int(info.st_mtime))
                    )
                except OSError:
                    stream.send(b"STAT" + struct.pack("<3I", 0, 0, 0))
            elif request == b"SEND":
                target, _, mode = path.rpartition(",")
                failure = await self.receive_file(read, target, int(mode or "420") & 0o777)
                stream.send(sync_fail(failure) if failure else b"OKAY" + bytes(4))
            else:
                stream.send(sync_fail(f"unknown sync request {request!r}".encode()))

    @staticmethod
    async def receive_file(read, target: str, mode: int) -> bytes | None:
        """DATA chunks until DONE; the first write error is kept and sent back after DONE, as adbd does."""
        failure = None
        try:
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            handle = open(target, "wb")  # noqa: SIM115 - closed below, after DONE
        except OSError as error:
            handle, failure = None, f"couldn't create file: {error.strerror}".encode()
        while True:
            header = await read(8)
            if header is None:
                break
            kind, length = header[:4], struct.unpack("<I", header[4:])[0]
            if kind == b"DONE":
                break
            data = await read(length) or b""
            if handle and not failure:
                try:
                    handle.write(data)
                    handle.flush()
                except OSError as error:
                    failure = f"write failed: {error.strerror}".encode()
        if handle:
            try:
                handle.close()
                os.chmod(target, mode)
            except OSError as error:
                failure = failure or f"write failed: {error.strerror}".encode()
        if failure:
            with contextlib.suppress(OSError):
                os.unlink(target)
        return failure


async def main(port: int, root: str, mode: str) -> None:
    async def accept(reader, writer):
        await Connection(reader, writer, root, mode).serve()
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", port)
    print(f"fake adbd listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--unauthorized", action="store_const", const="unauthorized", dest="mode", default="device")
    parser.add_argument("--offline", action="store_const", const="offline", dest="mode")
    arguments = parser.parse_args()
    try:
        asyncio.run(main(arguments.port, arguments.root, arguments.mode))
    except KeyboardInterrupt:
        sys.exit(0)
