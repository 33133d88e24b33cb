"""Open a report in real headless Chromium (Debian's `chromium`): screenshot, DOM, console and network.

Every request the page makes goes to a recording proxy on loopback (--proxy-server, with
loopback not bypassed), so "no network request" is observed, not assumed; console messages
(a CSP violation is one) come from Chromium's own log (--enable-logging=stderr).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium's own background traffic (component updates, its clock, sign-in), which flags do not fully silence
# in headless mode: not the page's. Everything else the proxy sees is a request the report made.
BROWSER_SERVICES = re.compile(
    r"^(CONNECT|GET|POST) (https?://)?(update\.googleapis\.com|clients\d*\.google\.com|accounts\.google\.com|"
    r"[\w.-]+\.gvt1\.com|optimizationguide-pa\.googleapis\.com|content-autofill\.googleapis\.com)[:/]"
)


def chromium_unavailable_reason() -> str | None:
    return None if CHROMIUM else "Debian's chromium is not installed (apt-get install chromium; .ci/run does)"


@dataclass
class PageVisit:
    dom: str
    screenshot: Path
    requests: list[str]
    console: list[str]


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []  # each visit makes a subclass with its own list

    def _refuse(self):
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(403)
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_CONNECT = _refuse  # http.server's handler names

    def log_message(self, *args):
        return None


def visit(page: Path, screenshot: Path, width: int = 1200, height: int = 3000) -> PageVisit:
    recorder = type("Recorder", (_Recorder,), {"seen": []})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), recorder)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    common = [
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}", "--proxy-bypass-list=<-loopback>",
        "--enable-logging=stderr", "--v=0",
    ]  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(prefix="edgebench-chromium-") as profile:
            url = page.resolve().as_uri()
            size = f"--window-size={width},{height}"
            shot = subprocess.run([*common, f"--user-data-dir={profile}", size, f"--screenshot={screenshot}", url],
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
            dom = subprocess.run([*common, f"--user-data-dir={profile}", "--dump-dom", url],
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        proxy.shutdown()
        proxy.server_close()
    log = shot.stderr + dom.stderr
    console = [line for line in log.splitlines() if re.search(r"CONSOLE|Refused to|Uncaught", line)]
    page_requests = [r for r in recorder.seen if not BROWSER_SERVICES.search(r)]
    return PageVisit(dom.stdout, screenshot, page_requests, console)
