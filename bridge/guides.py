"""What an artist asks for besides a prompt: controls (an edge, depth or pose picture the
result must follow) and image prompts (a reference picture whose look it should take), each
naming a host layer. Plain values; bridge/actions.py reads the layers and builds the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from .schema import CONTROL_END, CONTROL_KINDS, CONTROL_SCALE, CONTROL_START, IMAGE_PROMPT_WEIGHT

__all__ = ["CONTROL_KINDS", "DEFAULT_SCALE", "DEFAULT_WEIGHT", "Control", "ImagePrompt"]

DEFAULT_SCALE = float(CONTROL_SCALE.default or 0.0)
DEFAULT_WEIGHT = float(IMAGE_PROMPT_WEIGHT.default or 0.0)


@dataclass(frozen=True)
class Control:
    kind: str  # one of CONTROL_KINDS
    layer: str | None = None  # the host's id or name of the layer holding the control image;
    # None: the daemon makes it from the source ("auto")
    scale: float = DEFAULT_SCALE  # conditioning scale, 0 to 2
    start: float = float(CONTROL_START.default or 0.0)  # the fraction of the steps where
    end: float = float(CONTROL_END.default or 0.0)  # the control starts, and where it ends
    model: str | None = None  # ControlNet or T2I-Adapter id; None: the daemon picks one

    def wire(self, image: int | str) -> dict[str, object]:
        fields: dict[str, object] = {"kind": self.kind, "image": image, "scale": self.scale,
                                     "start": self.start, "end": self.end}
        if self.model:
            fields["model"] = self.model
        return fields


@dataclass(frozen=True)
class ImagePrompt:
    layer: str  # the host's id or name of the reference picture's layer (sent whole)
    weight: float = DEFAULT_WEIGHT
    model: str | None = None  # IP-Adapter id (plain, Plus, Plus Face); None: the daemon picks

    def wire(self, image: int) -> dict[str, object]:
        fields: dict[str, object] = {"image": image, "weight": self.weight}
        if self.model:
            fields["model"] = self.model
        return fields
