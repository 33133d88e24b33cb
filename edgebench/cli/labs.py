"""The across-labs subcommands of the CLI: `worker`, `farm submit`, `farm status`, `farm collect`.

Part of the CLI (these print); the work is in edgebench/labs/.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from pathlib import Path

from edgebench.cli.interrupt import interrupted_exit_code
from edgebench.cli.options import (
    broker_option,
    cache_dir_option,
    format_option,
    results_dir_option,
    results_folder,
    trust_option,
)
from edgebench.cli.render import emit, emit_farm, plain_console
from edgebench.core.errors import EdgebenchError
from edgebench.core.quiet import real_stderr

COLLECT_POLL_S = 0.5


def add_lab_commands(commands, farm_commands) -> None:
    worker = commands.add_parser("worker", help="a lab host's worker: measure the farm jobs of the devices it owns")
    worker.add_argument("--lab", required=True, help="this lab's name (shown in farm status)")
    worker.add_argument("--devices", type=Path, required=True, help="the folder of this lab's device files")
    broker_option(worker)
    results_dir_option(worker, help="this host's copy of the runs (./results)")
    cache_dir_option(worker)
    worker.add_argument(
        "--lease-ttl",
        type=float,
        default=30.0,
        help="seconds after which a silent worker's device lease expires and its job is retried (30)",
    )
    trust_option(worker)
    worker.set_defaults(handler=cmd_worker)

    submit = farm_commands.add_parser("submit", help="queue a farm file's jobs for the lab workers; prints the id")
    submit.add_argument("farm", type=Path, help="a farm file; devices by name or tag:TAG (their files stay in labs)")
    broker_option(submit)
    submit.add_argument("--deadline", default="12h", help="jobs not started by then expire (12h; 90m, 3600s)")
    cache_dir_option(submit)
    submit.set_defaults(handler=cmd_farm_submit)

    status = farm_commands.add_parser("status", help="a submitted farm run's progress per lab and device")
    status.add_argument("farm_run", nargs="?", help="the id farm submit printed (default: the newest)")
    broker_option(status)
    format_option(status)
    status.set_defaults(handler=cmd_farm_status)

    collect = farm_commands.add_parser(
        "collect", help="write a submitted farm run's results folder; exit code as farm check (2 while running)"
    )
    collect.add_argument("farm_run", nargs="?", help="the id farm submit printed (default: the newest)")
    broker_option(collect)
    results_dir_option(collect)
    collect.add_argument("--wait", action="store_true", help="keep collecting until every job ended or the deadline")
    collect.add_argument("--report", type=Path, metavar="HTML", help="also write the HTML report of the farm run")
    format_option(collect)
    collect.set_defaults(handler=cmd_farm_collect)


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise EdgebenchError(f"--deadline {text!r}: give a duration like 12h, 90m or 3600s")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def cmd_worker(args: argparse.Namespace) -> int:
    from edgebench.devices.inventory import list_devices
    from edgebench.labs.broker import broker_url, connect, redacted
    from edgebench.labs.worker import LabWorker, WorkerOptions

    if args.lease_ttl < 1:
        raise EdgebenchError("--lease-ttl must be at least 1 second")
    if not args.devices.is_dir():
        raise EdgebenchError(f"--devices {args.devices}: no such folder")
    devices = list_devices(args.devices)
    client = connect(args.broker)
    stderr = plain_console(file=real_stderr())

    def say(text: str) -> None:
        stderr.print(f"{time.strftime('%H:%M:%S')} {text}", markup=False, highlight=False, soft_wrap=True)

    options = WorkerOptions(
        results_dir=args.results_dir,
        cache_dir=args.cache_dir,
        lease_ttl_s=args.lease_ttl,
        trust_new_host=args.trust_new_host,
        command=("edgebench", "worker", "--lab", args.lab),
    )
    worker = LabWorker(args.lab, devices, client, options, say)
    say(f"broker {redacted(broker_url(args.broker))}")
    try:
        worker.serve(threading.Event())
    except KeyboardInterrupt as interruption:
        worker.stop()
        return interrupted_exit_code(interruption)
    return 0


def cmd_farm_submit(args: argparse.Namespace) -> int:
    from edgebench.farm.config import load_farm_file
    from edgebench.labs.broker import broker_url, connect, redacted
    from edgebench.labs.submit import submit_farm

    deadline = parse_duration(args.deadline)
    farm = load_farm_file(args.farm)
    client = connect(args.broker)
    stderr = plain_console(file=real_stderr())
    command = ["edgebench", *(sys.argv[1:] if args.argv is None else args.argv)]
    with stderr.status("preparing") as spinner:
        submission = submit_farm(farm, client, broker_url(args.broker), deadline, command, args.cache_dir,
                                 on_prepare=lambda text: spinner.update(text))  # fmt: skip
    stderr.print(f"submitted {len(submission.jobs)} job(s) to {redacted(broker_url(args.broker))}; follow with "
                 f"'edgebench farm status {submission.farm_run}', gather with 'edgebench farm collect "
                 f"{submission.farm_run} --wait'", markup=False, highlight=False, soft_wrap=True)  # fmt: skip
    for device in submission.unowned:
        stderr.print(f"note: no running worker owns {device} now; its jobs wait in its queue", markup=False,
                     highlight=False, soft_wrap=True)  # fmt: skip
    print(submission.farm_run)
    return 0


def cmd_farm_status(args: argparse.Namespace) -> int:
    from edgebench.labs.broker import connect, iso
    from edgebench.labs.collect import farm_view, newest_farm_run, status_rows
    from edgebench.labs.registry import live_workers
    from edgebench.report.farm_table import lab_status

    client = connect(args.broker)
    view = farm_view(client, args.farm_run or newest_farm_run(client))
    rows = status_rows(view)
    workers = live_workers(client)
    document = {
        "farm_run": view.farm_run,
        "deadline": iso(view.deadline),
        "deadline_epoch": view.deadline,
        "ended": view.ended,
        "jobs": rows,
        "workers": [{"worker": w, "lab": e["lab"], "devices": e["devices"]} for w, e in workers.items()],
    }
    counts = {
        state: sum(r["state"] == state for r in rows) for state in ("queued", "running", "done", "failed", "expired")
    }
    title = (f"farm run {view.farm_run}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
             + f"; deadline {iso(view.deadline)}")  # fmt: skip
    emit(args.format, lab_status(title, rows), document)
    return 0


def cmd_farm_collect(args: argparse.Namespace) -> int:
    from edgebench.labs.broker import Patience, connect
    from edgebench.labs.collect import collect, newest_farm_run

    client = connect(args.broker)
    results_dir = results_folder(args)
    farm_run = args.farm_run or newest_farm_run(client)
    stderr = plain_console(file=real_stderr())
    while True:
        collected = Patience().call(lambda: collect(client, farm_run, results_dir), f"collecting {farm_run}")
        for problem in collected.problems:
            stderr.print(f"warning: {problem}", markup=False, highlight=False, soft_wrap=True)
        if collected.final or not args.wait:
            break
        time.sleep(COLLECT_POLL_S)
    emit_farm(args.format, collected.summary)
    state = "final" if collected.final else "still running: collect again (or --wait) for the rest"
    stderr.print(f"farm run: {collected.folder} ({state})", markup=False, highlight=False, soft_wrap=True)
    if args.report:
        from edgebench.report.html_report import farm_report, write

        write(farm_report(farm_run, results_dir, args.report), args.report)
        stderr.print(f"report: {args.report}", markup=False, highlight=False, soft_wrap=True)
    return collected.summary.exit_code
