"""Options several subcommands share, defined once, and the measurement settings' flags, generated.

The flags of the settings come from the settings table (core/settings.py): name, type, default
and help are the table's. Each flag defaults to None ("not given"), so a device file's default
still applies where the command line says nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgebench.core.errors import EdgebenchError
from edgebench.core.settings import SETTINGS, Setting, SettingError, matrix_runs, resolve
from edgebench.results.layout import default_results_dir

RESULTS_DIR_HELP = "default: ./results or $EDGEBENCH_RESULTS"
CACHE_DIR_HELP = "variant cache (default: ~/.cache/edgebench/variants)"
BROKER_HELP = "redis://[:PASSWORD@]HOST:PORT/DB or rediss:// (default: $EDGEBENCH_BROKER or redis://127.0.0.1:6379/0)"


def results_dir_option(parser: argparse.ArgumentParser, help: str = RESULTS_DIR_HELP) -> None:
    parser.add_argument("--results-dir", type=Path, default=None, help=help)


def devices_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices-dir", type=Path, help="where device files live (default: ./devices)")


def cache_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, help=CACHE_DIR_HELP)


def trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-new-host", action="store_true", help="accept and record unknown SSH host keys")


def broker_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", help=BROKER_HELP)


def format_option(parser, choices=("table", "markdown", "json")) -> None:
    parser.add_argument("--format", choices=choices, default="table")


def results_folder(args) -> Path:
    return args.results_dir or default_results_dir()


def setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per measurement setting, from the table."""
    for setting in SETTINGS:
        kwargs = {"dest": setting.name, "default": None, "help": setting.describe().replace("%", "%%")}
        if setting.spec.choices and not setting.spec.matrix:  # a matrix's list is checked in given_settings
            kwargs["choices"] = setting.spec.choices
        if setting.type is bool:
            parser.add_argument(setting.flag, action="store_true", **kwargs)
            continue
        if setting.type is tuple:
            kwargs["metavar"] = "CPUS"
        elif setting.spec.matrix:
            kwargs["metavar"] = "{" + ",".join(setting.spec.choices) + "}[,...]"
        elif setting.spec.words:
            kwargs["type"] = _number_or_word(setting)
        elif setting.type is not str:
            kwargs["type"] = setting.type
        parser.add_argument(setting.flag, **kwargs)


def _number_or_word(setting: Setting):
    """An argparse type taking the setting's number or one of its words ('all')."""

    def parse(text: str):
        return setting.parse_text(text)

    parse.__name__ = f"{setting.type.__name__} or {'/'.join(word for word, _ in setting.spec.words)}"
    return parse


def given_settings(args: argparse.Namespace) -> dict:
    """The settings the command line gave, by name, each checked; one line naming the flag if one is wrong."""
    given = {}
    for setting in SETTINGS:
        value = getattr(args, setting.name)
        if value is None:
            continue
        if setting.type is tuple or setting.spec.matrix:
            value = setting.parse_text(value)
        _check(setting, value, getattr(args, setting.name))
        given[setting.name] = value
    try:
        for run in matrix_runs(given):
            resolve(given, run)  # what only the whole can say (min <= max seconds)
    except SettingError as error:
        raise EdgebenchError(str(error)) from None
    return given


def _check(setting: Setting, value, text) -> None:
    problem = setting.problem(value)
    if problem:
        if setting.type is tuple:
            problem = f"takes CPU numbers like 2,3, got {text!r}"
        raise EdgebenchError(f"{setting.flag} {problem}")
