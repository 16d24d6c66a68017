"""The task contract (bridge/schema.py) is the only place a task's parameters are written:
the CLI flags, the GIMP procedure arguments, the Krita docker's fields and the daemon's own
defaults are all made from it, so for every task they agree, and a new field reaches all of
them with no other edit."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest
from sfumato.bridge.errors import SfumatoError
from sfumato.bridge.protocol import ErrorCode
from sfumato.bridge.schema import (
    EDIT,
    EXPAND,
    GENERATE,
    INPAINT,
    REFINE,
    REMOVE,
    SEGMENT,
    TASKS,
    UPSCALE,
    Param,
    TaskSchema,
)
from sfumato.core.cli import build_parser
from sfumato.core.cli.task_flags import add_task_flags, task_values
from sfumato.core.diffusion.params import read_params

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "gimp" / "sfumato_gimp"))
sys.path.insert(0, str(ROOT / "plugins" / "krita"))

import gimp_procedures  # noqa: E402
from sfumato_krita import task_fields  # noqa: E402

# The smallest command line each CLI verb accepts (required flags at their contract values).
CLI_LINES = {
    "inpaint": ["inpaint", "in.png", "--mask", "m.png", "-o", "out.png"],
    "refine": ["refine", "in.png", "--strength", "0.4", "-o", "out.png"],
    "upscale": ["upscale", "in.png"],
    "generate": ["generate", "-o", "out.png"],
    "expand": ["expand", "in.png", "-o", "out.png"],
    "remove": ["remove", "in.png", "--mask", "m.png", "-o", "out.png"],
    "segment": ["segment", "in.png", "-o", "mask.png"],
    "edit": ["edit", "in.png", "-o", "out.png"],
}
GIMP_PROCEDURE = {"inpaint": "plug-in-sfumato-inpaint", "refine": "plug-in-sfumato-refine",
                  "upscale": "plug-in-sfumato-upscale",
                  "preprocess": "plug-in-sfumato-preprocess",
                  "generate": "plug-in-sfumato-generate", "expand": "plug-in-sfumato-expand",
                  "remove": "plug-in-sfumato-remove", "edit": "plug-in-sfumato-edit",
                  "segment": "plug-in-sfumato-select"}


@pytest.mark.parametrize("task", sorted(CLI_LINES))
def test_cli_flags_start_at_the_daemons_defaults_and_send_only_what_was_set(task: str) -> None:
    schema = TASKS[task]
    args = build_parser().parse_args(CLI_LINES[task])
    for param in schema.params:
        assert getattr(args, param.name) == (0.4 if param.required else param.default), param
    # what the daemon then runs with is the contract's default for every parameter
    sent = task_values(args, schema)
    assert schema.read(sent) == schema.read({"strength": 0.4} if task == "refine" else {})
    help_text = build_parser()._subparsers._group_actions[0].choices[task].format_help()
    for param in schema.params:
        assert param.flag in help_text


@pytest.mark.parametrize("task", sorted(GIMP_PROCEDURE))
def test_gimp_arguments_start_at_the_contracts_values_within_its_ranges(task: str) -> None:
    schema = TASKS[task]
    label, _, procedure_schema, arguments = gimp_procedures.PROCEDURES[GIMP_PROCEDURE[task]]
    assert procedure_schema is schema and label
    by_name = {arg[1]: arg for arg in arguments}
    for param in schema.params:
        kind, name, _, blurb, *rest = by_name[param.gimp_name]
        assert rest[-1] == (param.initial if param.initial is not None else ""), param
        assert blurb.lower().startswith(param.help[:20].lower())
        if param.kind in (int, float):
            low, high = rest[0], rest[1]
            assert kind == ("int" if param.kind is int else "double")
            assert low <= (param.low if param.absent is None else param.absent)
            assert param.high is not None and high <= param.high
    # a dialog left as it opens asks the daemon for exactly its defaults
    initial = {arg[1]: arg[-1] for arg in arguments}
    sent = gimp_procedures.values(schema, initial.__getitem__)
    required = {p.name: p.initial for p in schema.params if p.required}
    assert schema.read(sent) == schema.read(required)


@pytest.mark.parametrize(("schema", "fields"), [(INPAINT, task_fields.GENERATE_FIELDS),
                                                (REFINE, task_fields.GENERATE_FIELDS),
                                                (UPSCALE, task_fields.UPSCALE_FIELDS),
                                                (REMOVE, task_fields.REMOVE_FIELDS),
                                                (SEGMENT, task_fields.SELECT_FIELDS)])
def test_krita_fields_start_at_the_contracts_values_within_its_ranges(
        schema: TaskSchema, fields: tuple[task_fields.Field, ...]) -> None:
    by_name = {f.name: f for f in fields}
    shown = {p.name for p in schema.params} - task_fields.OWN_WIDGETS
    assert set(by_name) == shown  # every setting has a widget, none more
    for name in shown:
        param, field = schema.param(name), by_name[name]
        if schema in (INPAINT, UPSCALE, REMOVE, SEGMENT):  # the docker opens at these
            assert field.initial == param.initial
        if param.kind in (int, float):
            assert field.low <= (param.low if param.absent is None else param.absent)
            assert param.high is not None and field.high <= param.high
            assert bool(field.absent_text) == (param.absent is not None)
    # the docker keeps only what the artist changed: untouched, each task gets its own
    # default from the daemon (refine grows by 0, inpaint by 4); placeholders mean absent
    assert task_fields.request_params(schema, task_fields.stored("{}")) == {}
    changed = {f.name: f.low for f in fields if f.kind in (int, float)}
    sent = task_fields.request_params(schema, changed)
    assert all(schema.param(name).means_absent(changed[name]) for name in set(changed) - set(sent))
    schema.read({**sent, "strength": 0.5} if schema is REFINE else sent)  # all acceptable


def test_every_krita_widget_has_a_name_of_its_own() -> None:
    # tests and stylesheets find the docker's widgets by objectName: two fields of one name
    # would make a setting unreachable
    names = [f.object_name for f in task_fields.GENERATE_FIELDS + task_fields.UPSCALE_FIELDS]
    names += [f"sfumato_{name}" for name in task_fields.OWN_WIDGETS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("schema", [INPAINT, REFINE])
def test_the_diffusion_tasks_run_with_the_contracts_defaults(schema: TaskSchema) -> None:
    params = read_params({"strength": 0.3} if schema is REFINE else {}, schema)
    defaults = schema.defaults()
    for name in ("steps", "grow", "feather", "context"):
        assert getattr(params, name) == defaults[name]
    assert len(params.seeds) == defaults["variants"]


def test_a_new_field_reaches_the_cli_gimp_and_krita_with_no_other_edit() -> None:
    sharpness = Param("sharpness", float, 0.25, "how crisp the edges come out", 0.0, 1.0,
                      label="S_harpness")
    schema = dataclasses.replace(INPAINT, params=INPAINT.params + (sharpness,))

    cli = argparse.ArgumentParser()
    add_task_flags(cli, schema)
    assert cli.parse_args([]).sharpness == 0.25
    assert task_values(cli.parse_args(["--sharpness", "0.75"]), schema)["sharpness"] == 0.75
    assert "how crisp the edges come out" in cli.format_help()

    gimp = {arg[1]: arg for arg in gimp_procedures.task_arguments(schema)}
    assert gimp["sharpness"] == ("double", "sharpness", "S_harpness",
                                 "How crisp the edges come out", 0.0, 1.0, 0.25)

    (krita,) = [f for f in task_fields.fields(schema) if f.name == "sharpness"]
    assert (krita.kind, krita.low, krita.high, krita.initial) == (float, 0.0, 1.0, 0.25)
    assert task_fields.request_params(schema, {"sharpness": 0.5}) == {"sharpness": 0.5}

    assert schema.read({})["sharpness"] == 0.25  # and the daemon's default is the same


@pytest.mark.parametrize(("params", "words"), [
    ({"steps": "30"}, "steps must be a whole number"),
    ({"steps": 30.0}, "steps must be a whole number"),
    ({"strength": float("nan")}, "strength must be a number from 0 to 1"),
    ({"seed": True}, "seed must be a whole number"),
    ({"stpes": 30}, "inpaint has no parameter 'stpes'"),
    ({"grow": 2000}, "grow must be a whole number from 0 to 1024"),
])
def test_the_daemon_refuses_what_the_contract_does_not_allow(params: dict[str, Any],
                                                             words: str) -> None:
    with pytest.raises(SfumatoError) as caught:
        INPAINT.read(params)
    assert caught.value.code is ErrorCode.BAD_PARAMS and words in caught.value.message


def test_the_placeholders_front_ends_show_mean_absent_on_the_wire() -> None:
    values = INPAINT.read({"seed": -1, "guidance": 0.0, "resolution": 0})
    assert (values["seed"], values["guidance"], values["resolution"]) == (None, None, None)
    assert UPSCALE.read({"scale": 0.0, "tile": 0})["scale"] is None
    with pytest.raises(SfumatoError):
        REFINE.read({})  # strength has no default: required, and the message says what it is


# --- generate and expand (issue 19) ----------------------------------------------------------


@pytest.mark.parametrize("schema", [GENERATE, EXPAND])
def test_krita_has_a_field_for_every_generate_and_expand_setting(schema: TaskSchema) -> None:
    # the docker's shared fields (inpaint's) and expand's sides; a field a task does not take
    # (generate has no context) is left out of its request, untouched ones too
    fields = {f.name: f for f in task_fields.GENERATE_FIELDS + task_fields.EXPAND_FIELDS}
    for param in schema.params:
        if param.name in task_fields.OWN_WIDGETS:
            continue
        field = fields[param.name]
        if param.kind in (int, float):
            assert field.low <= (param.low if param.absent is None else param.absent)
            assert param.high is not None and field.high <= param.high
    everything = {name: f.initial for name, f in fields.items()}
    sent = task_fields.request_params(schema, everything)
    assert set(sent) <= set(schema.names)
    schema.read(sent)  # acceptable to the daemon
    assert task_fields.request_params(schema, task_fields.stored("{}")) == {}


@pytest.mark.parametrize("schema", [GENERATE, EXPAND])
def test_generate_and_expand_run_with_the_contracts_defaults(schema: TaskSchema) -> None:
    params = read_params({}, schema)
    defaults = schema.defaults()
    assert params.strength == 1.0 and params.steps == defaults["steps"]
    assert params.feather == defaults["feather"]
    assert params.context == defaults.get("context", 0) and params.grow == defaults.get("grow", 0)
    assert schema.read({})["left" if schema is EXPAND else "variants"] == (
        0 if schema is EXPAND else 1)
    with pytest.raises(SfumatoError):
        schema.read({"strength": 0.5})  # neither takes a strength: always a new picture


def test_reuse_settings_asks_the_daemon_for_the_recipe_again() -> None:
    params = {"prompt": "a kite", "negative_prompt": "blur", "steps": 9, "seed": 41,
              "variants": 1, "feather": 4, "right": 64, "strength": 0.3}
    settings = task_fields.reused(params)
    assert (settings["prompt"], settings["negative_prompt"], settings["strength"]) == (
        "a kite", "blur", 0.3)
    again = task_fields.request_params(GENERATE, task_fields.stored(settings["generate_values"]))
    assert again == {"steps": 9, "seed": 41, "variants": 1, "feather": 4}
    sides = task_fields.request_params(EXPAND, task_fields.stored(settings["expand_values"]))
    assert sides == {"right": 64}


# --- edit by instruction (issue 19) ----------------------------------------------------------


def test_krita_has_a_field_for_every_edit_setting_and_the_prompt_box_is_its_instruction(
        ) -> None:
    fields = {f.name: f for f in task_fields.GENERATE_FIELDS + task_fields.EDIT_FIELDS}
    for param in EDIT.params:
        if param.name in task_fields.OWN_WIDGETS | {"instruction"}:
            continue
        field = fields[param.name]
        if param.kind in (int, float):
            assert field.low <= (param.low if param.absent is None else param.absent)
            assert param.high is not None and field.high <= param.high
    assert [f.object_name for f in task_fields.EDIT_FIELDS] == ["sfumato_edit_image_guidance"]
    assert task_fields.request_params(EDIT, task_fields.stored("{}")) == {}
    # an edit's recipe reused: its instruction back in the prompt box, its own setting kept
    settings = task_fields.reused({"instruction": "make it night", "image_guidance": 2.0,
                                   "steps": 12, "seed": 4})
    assert settings["prompt"] == "make it night"
    again = {**task_fields.stored(settings["generate_values"]),
             **task_fields.stored(settings["edit_values"])}
    assert task_fields.request_params(EDIT, again) == {"image_guidance": 2.0, "steps": 12,
                                                       "seed": 4}


def test_edit_runs_with_the_contracts_defaults_and_its_instruction_as_the_prompt() -> None:
    params = read_params({"instruction": " make it night "}, EDIT)
    defaults = EDIT.defaults()
    assert params.prompt == "make it night" and params.strength == 1.0
    assert (params.steps, params.context, params.feather) == (
        defaults["steps"], defaults["context"], defaults["feather"])
    assert EDIT.read({"image_guidance": 0.0})["image_guidance"] is None  # the placeholder
    with pytest.raises(SfumatoError):
        EDIT.read({"prompt": "x"})  # its words are the instruction, by that name
