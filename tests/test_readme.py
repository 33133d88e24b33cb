"""The README's front page tells a newcomer what to type: every `edgebench` command in it runs.

The commands are read from the README's shell blocks up to the guides (what a newcomer types first), in
order, in a scratch folder holding copies of devices/ and farms/ (the folders the commands name), so the
results of one are there for the next (`report` and `check` read the runs before them). Lines that are not
`edgebench` commands (the install line, the test commands) are what `.ci/run` itself runs. The front page
stays under 150 lines.
"""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FRONT_PAGE_LINES = 150
# What each command may end with: the farm's and check's "cannot tell" and "regression" are answers, not errors.
ANSWERS = {"farm run": (0, 1, 2), "check": (0, 1, 2)}


def front_page() -> str:
    text = README.read_text()
    return text[: text.index("## The guides")]


def front_page_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", front_page(), flags=re.S):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command.startswith("edgebench "):
                commands.append(command)
    return commands


def test_the_front_page_is_short_and_names_its_commands():
    assert len(README.read_text().splitlines()) < FRONT_PAGE_LINES
    commands = front_page_commands()
    assert commands[0] == "edgebench run --device local --model mnist", commands
    assert any(c.startswith("edgebench farm run farms/demo.toml") for c in commands)


@pytest.mark.slow
def test_every_command_of_the_front_page_runs(tmp_path, variant_cache):
    for folder in ("devices", "farms"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    env = {"EDGEBENCH_CACHE_DIR": str(variant_cache), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    ran = []
    for command in front_page_commands():
        argv = shlex.split(command)
        done = subprocess.run([sys.executable, "-m", "edgebench", *argv[1:]], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600, env={**_inherited(), **env})  # fmt: skip
        allowed = next((codes for prefix, codes in ANSWERS.items() if " ".join(argv[1:]).startswith(prefix)), (0,))
        assert done.returncode in allowed, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, f"{command}\n{done.stderr}"
        ran.append((command, done))
    run, *_ = (done for command, done in ran if command.startswith("edgebench run"))
    assert "answer on local" in run.stdout
    first_night, second_night = (done for command, done in ran if command.startswith("edgebench farm run"))
    assert first_night.returncode == 2 and "no baseline" in first_night.stdout
    assert "pi4-emulated-litert" in first_night.stdout  # absent here (not served), said, not failed
    assert "no baseline" not in second_night.stdout
    assert (tmp_path / "report.html").stat().st_size > 10_000


def _inherited() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("EDGEBENCH_RESULTS", "EDGEBENCH_HISTORY")}
