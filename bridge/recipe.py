"""What made a result, kept with it: the task, the model, every setting sent (prompt, negative
prompt, strength, steps, controls, image prompts...), this result's own seed and the daemon's
version. Stored as JSON text under one name everywhere: a PNG text chunk in CLI outputs, a GIMP
layer parasite, a Krita document annotation keyed by the layer's id.

Standard library only: it runs inside GIMP's and Krita's Python.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SfumatoError
from .protocol import ErrorCode
from .schema import ResultInfo, task_schema

RECIPE_KEY = "sfumato-recipe"  # PNG text keyword, GIMP parasite name, Krita annotation prefix
RECIPE_FORMAT = 1


@dataclass(frozen=True)
class Recipe:
    task: str
    params: dict[str, Any]  # what was sent, `seed` this result's own, `variants` 1
    model: str | None = None
    daemon_version: str = ""
    guides: dict[str, Any] = field(default_factory=dict)  # controls, image prompts (wire form)

    @property
    def seed(self) -> int | None:
        seed = self.params.get("seed")
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else None

    def to_json(self) -> str:
        return json.dumps({"format": RECIPE_FORMAT, "task": self.task, "model": self.model,
                           "daemon_version": self.daemon_version, "params": self.params,
                           **self.guides}, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        """The recipe in `text`; BAD_PARAMS saying what is wrong when it is not one."""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
            raise SfumatoError(ErrorCode.BAD_PARAMS, "this is not a sfumato recipe (JSON with "
                               "task and params); was the file written by sfumato?")
        task = data.get("task")
        task_schema(str(task))  # UNKNOWN_TASK, naming the tasks this version runs
        model = data.get("model")
        guides = {k: data[k] for k in ("controls", "image_prompts") if isinstance(data.get(k),
                                                                                   list)}
        return cls(str(task), dict(data["params"]), model if isinstance(model, str) else None,
                   str(data.get("daemon_version") or ""), guides)

    def again(self) -> dict[str, Any]:
        """The params to paint this again with a new seed (Regenerate): the same settings,
        the seed left to the daemon."""
        return {k: v for k, v in self.params.items() if k != "seed"}

    def describe(self) -> str:
        """A few readable lines, for `sfumato inspect` and the editors' messages."""
        lines = [f"{self.task} with {self.model or 'the default model'}"
                 + (f" (daemon {self.daemon_version})" if self.daemon_version else "")]
        for name, value in sorted(self.params.items()):
            lines.append(f"  {name}: {value}")
        for name, value in sorted(self.guides.items()):
            lines.append(f"  {name}: {json.dumps(value)}")
        return "\n".join(lines)


def recipes(task: str, sent: Mapping[str, Any], info: ResultInfo, count: int,
            daemon_version: str = "") -> list[Recipe]:
    """One recipe per result raster: the params that were sent (list-valued guides apart),
    each with its own seed."""
    params = {k: v for k, v in sent.items() if k not in ("controls", "image_prompts")}
    guides = {k: sent[k] for k in ("controls", "image_prompts") if sent.get(k)}
    seeds: list[int | None] = list(info.seeds) if len(info.seeds) == count else [None] * count
    made = []
    for seed in seeds:
        own = {**params, "variants": 1} if "variants" in params or count > 1 else dict(params)
        if seed is not None:
            own["seed"] = seed
        made.append(Recipe(task, own, info.model, daemon_version, dict(guides)))
    return made
