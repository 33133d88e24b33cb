"""The settings table is the one definition: the agent's own parser, the CLI, farm files, device files and the
labs' job schema all agree with it, setting by setting."""

from __future__ import annotations

import argparse
import math

import pytest
from jsonschema import Draft202012Validator

from edgebench.agent import agent
from edgebench.cli.options import given_settings, setting_flags
from edgebench.core.errors import EdgebenchError
from edgebench.core.settings import (
    SETTINGS,
    Setting,
    SettingError,
    Settings,
    agent_settings,
    comparability_settings,
    from_plain,
    json_schema,
    matrix_runs,
    plain_settings,
    read_table,
    resolve,
)


def _unusual(setting: Setting):
    """A valid value other than the default, of the setting's type: made from the table, so that a new setting
    is checked here without touching this file."""
    if setting.spec.choices:
        return next(c for c in setting.spec.choices if c != setting.default)
    if setting.type is bool:
        return not setting.default
    if setting.type is tuple:
        return (0, 1)
    if setting.type is str:  # a free string (a path the device reads)
        return "/an/unusual/path.json"
    low = setting.spec.minimum if setting.spec.minimum is not None else (setting.spec.above or 0)
    base = setting.default if setting.default is not None else low + 100  # an optional count: above the others
    return base + 3 if setting.type is int else float(base) + 0.75


UNUSUAL = {s.name: _unusual(s) for s in SETTINGS}
# max_seconds must stay at or above min_seconds; each moved by the same amount, it does.


def test_every_setting_has_an_unusual_value_here():
    assert set(UNUSUAL) == {s.name for s in SETTINGS}
    assert all(UNUSUAL[s.name] != s.default for s in SETTINGS)


def test_the_agent_parses_every_agent_setting_back_to_the_same_value():
    settings = Settings(**UNUSUAL)
    parsed, _ = agent.parse_settings(["model.tflite", *settings.agent_argv(with_accuracy=True)])
    for setting in agent_settings():
        assert setting.name in agent.DEFAULTS, f"the agent does not know {setting.name}"
        value = parsed[setting.name]
        expected = getattr(settings, setting.name)
        assert (tuple(value) if setting.type is tuple else value) == expected, setting.name


def test_the_agent_defaults_are_the_tables():
    parsed, _ = agent.parse_settings(["model.tflite", *Settings().agent_argv(with_accuracy=True)])
    bare, _ = agent.parse_settings(["model.tflite"])
    for setting in agent_settings():
        table = setting.default if setting.default != () else None  # the agent says None for "no pinning"
        assert agent.DEFAULTS[setting.name] == table, setting.name
        assert parsed[setting.name] == bare[setting.name], setting.name


def test_rounds_after_the_first_measure_no_accuracy():
    argv = Settings(samples=50).agent_argv(with_accuracy=False)
    assert argv[argv.index("--samples") + 1] == "0"


def _cli(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser()
    setting_flags(parser)
    return given_settings(parser.parse_args(argv))


def test_the_cli_has_one_flag_per_setting_and_reads_it_by_name():
    argv = []
    for setting in SETTINGS:
        value = UNUSUAL[setting.name]
        if setting.type is bool:  # a switch: the flag alone
            argv += [setting.flag]
            continue
        argv += [setting.flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    assert _cli(argv) == UNUSUAL
    assert _cli([]) == {}  # nothing given: the device file's and the table's defaults apply later


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rounds", "0"], "--rounds must be at least 1, got 0"),
        (["--samples", "-1"], "--samples must be 0 or more, got -1"),
        (["--timeout", "nan"], "--timeout must be more than 0 seconds, got nan"),
        (["--wait", "-1"], "--wait must be 0 or more seconds, got -1"),
        (["--cpus", "a,b"], "--cpus takes CPU numbers like 2,3, got 'a,b'"),
        (["--min-seconds", "5", "--max-seconds", "2"], "need --min-seconds <= --max-seconds, got 5 > 2"),
        (["--max-seconds", "inf"], "--max-seconds must be a finite number"),
        (["--accelerator", "tpu"], "--accelerator must be one of cpu, gpu, npu, got 'tpu'"),
        (["--accelerator", "gpu,tpu"], "--accelerator takes cpu, gpu, npu, got 'tpu'"),
        (["--accelerator", "gpu,gpu"], "--accelerator lists each value once, got gpu,gpu"),
    ],
)
def test_the_cli_names_the_flag_of_a_bad_value(argv, message):
    with pytest.raises(EdgebenchError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        _cli(argv)


def test_a_farm_file_section_takes_the_same_settings_under_their_keys():
    table = {s.key: list(UNUSUAL[s.name]) if s.type is tuple else UNUSUAL[s.name] for s in SETTINGS}
    assert read_table(table, "run.") == UNUSUAL
    assert read_table({"warmup_runs": 2}, "run.") == {"warmup_min_runs": 2}  # the key users have been writing
    with pytest.raises(SettingError, match=r"key 'run.rounds' must be at least 1, got 0"):
        read_table({"rounds": 0}, "run.")
    with pytest.raises(SettingError, match=r"key 'run.timeout' must be int or float, got '1h'"):
        read_table({"timeout": "1h"}, "run.")
    with pytest.raises(SettingError, match=r"unknown key 'run.thread'"):
        read_table({"thread": 2}, "run.")
    with pytest.raises(SettingError, match=r"key 'run.threads' must be int, got True"):
        read_table({"threads": True}, "run.")


def test_layers_resolve_in_order_and_none_is_not_given():
    device = {"threads": 4, "cpus": (2, 3)}
    settings = resolve(device, {"threads": 2, "cpus": None})
    assert settings.threads == 2 and settings.cpus == (2, 3) and settings.min_runs == 64
    with pytest.raises(SettingError, match="need --min-seconds <= --max-seconds"):
        resolve({"min_seconds": 3.0}, {"max_seconds": 2.0})


def test_the_job_schema_is_the_tables_and_round_trips():
    validator = Draft202012Validator(json_schema())
    plain = plain_settings(UNUSUAL)
    assert list(validator.iter_errors(plain)) == []
    assert from_plain(plain) == UNUSUAL
    assert list(validator.iter_errors({"rounds": 0})) and list(validator.iter_errors({"nope": 1}))
    assert list(validator.iter_errors({"timeout": 0})) and not list(validator.iter_errors({"samples": None}))


def test_run_json_keeps_the_agent_settings_by_name():
    document = Settings(**UNUSUAL).agent_dict()
    assert set(document) == {s.name for s in agent_settings()}
    assert document["cpus"] == [0, 1] and not any(isinstance(v, float) and math.isnan(v) for v in document.values())


def test_compare_reads_from_the_table_which_settings_make_runs_incomparable():
    assert {s.name for s in comparability_settings()} == {
        "threads", "delegate", "accelerator", "gpu_precision", "npu_vendor", "openvino_device", "nnapi_accelerator",
        "cpus", "samples", "accuracy_tolerance", "warmup_min_runs",
        "warmup_min_seconds", "min_runs", "min_seconds", "max_runs",
    }  # fmt: skip


def test_a_matrix_setting_takes_a_list_and_each_run_holds_one_value():
    """--accelerator gpu,cpu (or a TOML array) is one run per value, in order; a single value wins over a device
    file's list; a list reaching one run (a farm, a lab job) is refused with what to do instead."""
    assert _cli(["--accelerator", "gpu,cpu"]) == {"accelerator": ("gpu", "cpu")}
    assert _cli(["--accelerator", "gpu"]) == {"accelerator": "gpu"}
    assert read_table({"accelerator": ["npu", "cpu"]}, "") == {"accelerator": ("npu", "cpu")}
    assert read_table({"accelerator": ["gpu"]}, "") == {"accelerator": "gpu"}
    device = {"accelerator": ("gpu", "cpu"), "threads": 2}
    assert matrix_runs(device, {}) == [{"accelerator": "gpu"}, {"accelerator": "cpu"}]
    assert matrix_runs(device, {"accelerator": "cpu"}) == [{}]  # the command line's single value
    assert [resolve(device, run).accelerator for run in matrix_runs(device, {})] == ["gpu", "cpu"]
    with pytest.raises(
        SettingError,
        match=r"--accelerator lists gpu,cpu: a list is a matrix, measured by "
        r"'edgebench run' one run per value; here give one value",
    ):
        resolve(device)
    with pytest.raises(SettingError, match=r"key 'accelerator' must be a str or a list of them, got \[1\]"):
        read_table({"accelerator": [1]}, "")
