"""A task's command-line flags, made from its contract (bridge/schema.py): names, types,
defaults, ranges and help come from there, so the CLI cannot drift from the daemon."""

from __future__ import annotations

import argparse
from typing import Any

from sfumato.bridge.schema import Param, TaskSchema


def add_task_flags(cmd: argparse.ArgumentParser, schema: TaskSchema) -> None:
    """One flag per parameter of `schema`."""
    group = cmd.add_argument_group(f"{schema.name} settings (the daemon's defaults)")
    for param in schema.params:
        group.add_argument(param.flag, dest=param.name, **_argument(param))


def task_values(args: argparse.Namespace, schema: TaskSchema) -> dict[str, Any]:
    """The request's params from parsed flags: what the user set, checked against the
    contract here so a bad value is refused before any daemon starts. Flags left out are left
    out of the request too: the daemon's default is the contract's."""
    given = {p.name: getattr(args, p.name) for p in schema.params
             if not p.means_absent(getattr(args, p.name))}
    schema.read(given)  # BAD_PARAMS, worded by the contract
    return given


def _argument(param: Param) -> dict[str, Any]:
    spec: dict[str, Any] = {"help": _help(param), "default": param.default}
    if param.kind is bool:
        spec["action"] = argparse.BooleanOptionalAction
    else:
        spec["type"] = param.kind
        spec["metavar"] = {int: "N", float: "X", str: "TEXT"}[param.kind]
    if param.choices:
        spec["choices"], spec["metavar"] = param.choices, None
    if param.required:
        spec["required"] = True
    return spec


def _help(param: Param) -> str:
    text = param.help
    if param.bounds:
        text += f"; {param.bounds}"
    if param.default is not None and param.default != "":
        text += f" (default {param.default})"
    return text.replace("%", "%%")
