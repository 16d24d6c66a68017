"""The docker's task settings, made from the task contract (bridge/schema.py). No Qt, no
Krita: the contract test checks them against the daemon's defaults and ranges.

A field the artist never touched is left out of the request, so each task gets its own
default (inpaint grows the selection by 4 px, refine by 0) from the daemon.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sfumato.bridge.schema import (
    EDIT,
    EXPAND,
    EXPAND_SIDES,
    INPAINT,
    REMOVE,
    SEGMENT,
    UPSCALE,
    Param,
    TaskSchema,
)

# Parameters with widgets of their own in the docker: the prompt boxes, and strength, whose
# dial also picks the task (100 % inpaints, less refines).
OWN_WIDGETS = frozenset({"prompt", "negative_prompt", "strength"})
QT_INT_MAX = 2**31 - 1  # QSpinBox holds a C int


@dataclass(frozen=True)
class Field:
    name: str  # the wire name; the widget is `sfumato_<name>`
    kind: type  # int, float, str or bool
    label: str
    tip: str
    low: float
    high: float
    initial: Any
    choices: tuple[str, ...] = ()
    absent_text: str = ""  # what the spin box shows at the value that means "absent"
    widget_prefix: str = "sfumato_"  # a box of its own keeps its widgets' names apart

    @property
    def object_name(self) -> str:
        return f"{self.widget_prefix}{self.name}"


def field(param: Param) -> Field:
    low = param.low if param.low is not None else 0
    if param.absent is not None and not isinstance(param.absent, str):
        low = min(low, float(param.absent))
    high = param.high if param.high is not None else QT_INT_MAX
    if param.kind is int:  # QSpinBox.setRange takes ints only: a float there raises
        low, high = int(low), int(min(high, QT_INT_MAX))
    absent = "" if param.absent is None else param.absent_label or "auto"
    return Field(param.name, param.kind, param.label.replace("_", ""), param.help, low, high,
                 param.initial, param.choices, absent)


def fields(schema: TaskSchema, skip: frozenset[str] = frozenset()) -> tuple[Field, ...]:
    return tuple(field(p) for p in schema.params if p.name not in skip)


GENERATE_FIELDS = fields(INPAINT, OWN_WIDGETS)  # inpaint and refine take the same names
UPSCALE_FIELDS = fields(UPSCALE)
# expand's own: the sides; its other settings are the shared ones above (a field the artist
# never touched is left out, so expand gets its own feather and context from the daemon)
EXPAND_FIELDS = tuple(field(EXPAND.param(side)) for side in EXPAND_SIDES)
# edit's own (issue 19): its instruction is the docker's prompt box, its other settings the
# shared ones above; image guidance is the one setting only it takes
EDIT_FIELDS = tuple(replace(f, widget_prefix="sfumato_edit_")  # sfumato_edit_image_guidance
                    for f in fields(EDIT, OWN_WIDGETS | {"instruction"})
                    if f.name not in {g.name for g in GENERATE_FIELDS})
# remove's own box (issue 17); its prompt stays the daemon's neutral one, the docker's
# prompt box being what to paint
REMOVE_FIELDS = tuple(replace(f, widget_prefix="sfumato_remove_")  # sfumato_remove_grow ...
                      for f in fields(REMOVE, OWN_WIDGETS))


# select object's own box (issue 18): words, soft edges, matting model, context
SELECT_FIELDS = tuple(replace(f, widget_prefix="sfumato_select_")  # sfumato_select_text ...
                      for f in fields(SEGMENT, OWN_WIDGETS))


def stored(text: str) -> dict[str, Any]:
    """The artist's changed values, as kept in Krita's settings (JSON; bad text: none)."""
    try:
        values = json.loads(text or "{}")
    except ValueError:
        return {}
    return values if isinstance(values, dict) else {}


def request_params(schema: TaskSchema, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values `schema` takes, without the ones that mean "absent" (seed -1 ...)."""
    names = set(schema.names) - OWN_WIDGETS
    return {name: value for name, value in values.items()
            if name in names and not schema.param(name).means_absent(value)}



def reused(params: Mapping[str, Any]) -> dict[str, Any]:
    """The docker's settings from a recipe's params (Reuse settings): the prompt boxes,
    strength, and the values of the task fields and expand's sides, as the docker keeps them."""
    shared = {f.name for f in GENERATE_FIELDS}
    sides = {f.name for f in EXPAND_FIELDS}
    own_edit = {f.name for f in EDIT_FIELDS}
    settings: dict[str, Any] = {
        # an edit's instruction goes in the prompt box, where Edit reads it
        "prompt": str(params.get("prompt") or params.get("instruction") or ""),
        "negative_prompt": str(params.get("negative_prompt") or ""),
        "generate_values": json.dumps({k: v for k, v in params.items() if k in shared},
                                      sort_keys=True),
        "expand_values": json.dumps({k: v for k, v in params.items() if k in sides},
                                    sort_keys=True),
        "edit_values": json.dumps({k: v for k, v in params.items() if k in own_edit},
                                  sort_keys=True),
    }
    strength = params.get("strength")
    if isinstance(strength, int | float) and not isinstance(strength, bool):
        settings["strength"] = float(strength)
    return settings
