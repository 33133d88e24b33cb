"""Open a report in real headless Chromium (Debian's `chromium`) and ask it, over the DevTools protocol, what it saw.

Chromium runs with --remote-debugging-pipe: DevTools protocol messages (JSON, each ended by a NUL
byte) go in on fd 3 and come out on fd 4, so no port, websocket library or driver is needed. The
page's own session reports every request it makes (Network.requestWillBeSent), every console
message and CSP violation (Runtime.consoleAPICalled, Log.entryAdded, Runtime.exceptionThrown), and
the laid-out size of each section and plot (Runtime.evaluate), at a desktop and a phone width.
Chromium's background traffic (component updates) is not the page's and is not seen here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MEASURE = """JSON.stringify({
  sections: Array.from(document.querySelectorAll('section')).map(s => {
    const r = s.getBoundingClientRect(); return {id: s.id, width: r.width, height: r.height}; }),
  plots: Array.from(document.querySelectorAll('figure.plot svg')).map(s => {
    const r = s.getBoundingClientRect(); return {width: r.width, height: r.height}; }),
  scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth
})"""


def chromium_unavailable_reason() -> str | None:
    return None if CHROMIUM else "Debian's chromium is not installed (apt-get install chromium; .ci/run does)"


@dataclass
class PageVisit:
    dom: str
    screenshot: Path
    requests: list[str]  # every URL the page asked for but itself (file://) and inline data: URLs
    console: list[str]  # console messages, log entries (a CSP violation is one) and uncaught exceptions
    layout: dict  # width 1200: sections and plots with their sizes, and whether the page scrolls sideways
    phone_layout: dict  # the same at a 390 px wide phone screen


class DevTools:
    """A DevTools protocol connection over Chromium's pipe: send a command, wait for its answer, keep events."""

    def __init__(self, profile: str):
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(3, 4, commands_read, answers_write), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: (os.dup2(commands_read, 3), os.dup2(answers_write, 4)),
        )  # fmt: skip
        os.close(commands_read)
        os.close(answers_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60.0):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(f"no answer to {method} within {timeout:g}s")

    def wait_for(self, method: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return next(e for e in self.events if e.get("method") == method)
            self.events.append(self._read())
        raise TimeoutError(f"no {method} within {timeout:g}s")

    def _read(self, timeout: float = 60.0) -> dict:
        """The next message; a Chromium that says nothing for `timeout` seconds fails the test, never hangs it."""
        while b"\0" not in self._buffer:
            if not select.select([self._answers], [], [], timeout)[0]:
                raise TimeoutError(f"chromium sent nothing for {timeout:g}s")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise ConnectionError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError, ConnectionError):
            self.send("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._answers)


def visit(page: Path, screenshot: Path, width: int = 1200, height: int = 900) -> PageVisit:
    with tempfile.TemporaryDirectory(prefix="edgebench-chromium-") as profile:
        tools = DevTools(profile)
        try:
            target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Network", "Runtime", "Log"):
                tools.send(f"{domain}.enable", session=session)
            layouts = []
            for view_width, mobile in ((width, False), (390, True)):
                tools.send("Emulation.setDeviceMetricsOverride", {"width": view_width, "height": height,
                           "deviceScaleFactor": 1, "mobile": mobile}, session=session)  # fmt: skip
                tools.events = [e for e in tools.events if e.get("method") != "Page.loadEventFired"]
                tools.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
                tools.wait_for("Page.loadEventFired")
                measured = tools.send("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True},
                                      session=session)  # fmt: skip
                layouts.append(json.loads(measured["result"]["value"]))
                if not mobile:
                    shot = tools.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                      session=session)  # fmt: skip
                    screenshot.write_bytes(base64.b64decode(shot["data"]))
                    dom = tools.send("Runtime.evaluate", {"expression": "document.documentElement.outerHTML",
                                     "returnByValue": True}, session=session)["result"]["value"]  # fmt: skip
        finally:
            tools.close()
    events = tools.events
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    requests = [url for url in requests if not url.startswith(("file:", "data:", "about:"))]
    console = [f"console.{e['params']['type']}: {e['params'].get('args')}" for e in events
               if e.get("method") == "Runtime.consoleAPICalled"]  # fmt: skip
    console += [f"log {e['params']['entry']['level']}: {e['params']['entry']['text']}" for e in events
                if e.get("method") == "Log.entryAdded"]  # fmt: skip
    console += [f"exception: {e['params']['exceptionDetails'].get('text')}" for e in events
                if e.get("method") == "Runtime.exceptionThrown"]  # fmt: skip
    return PageVisit("<!DOCTYPE html>\n" + dom, screenshot, requests, console, layouts[0], layouts[1])
