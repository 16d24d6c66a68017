"""What an artist asks for besides a prompt: controls (an edge, depth or pose picture the
result must follow) and image prompts (a reference picture whose look it should take), each
naming a host layer. Plain values; bridge/actions.py reads the layers and builds the request.
"""

from __future__ import annotations

from dataclasses import dataclass

# What the daemon knows (core/preprocessors.py); "auto" works for all, depth and pose need a
# depth or pose (ViTPose) model in the daemon's model store.
CONTROL_KINDS = ("canny", "lineart", "scribble", "softedge", "depth", "pose", "tile")
DEFAULT_SCALE = 0.6
DEFAULT_WEIGHT = 0.6


@dataclass(frozen=True)
class Control:
    kind: str  # one of CONTROL_KINDS
    layer: str | None = None  # the host's id or name of the layer holding the control image;
    # None: the daemon makes it from the source ("auto")
    scale: float = DEFAULT_SCALE  # conditioning scale, 0 to 2
    start: float = 0.0  # the fraction of the steps where the control starts ...
    end: float = 1.0  # ... and ends
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
