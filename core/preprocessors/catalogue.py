"""Control images made from a picture: the "auto" of a control, and the `preprocess` task.

canny, lineart, scribble, softedge and tile need no weights (OpenCV and numpy); depth needs a
depth-estimation model in the model store, pose a ViTPose model (core/pose.py). Each returns an
(H, W, 3) uint8 image in the convention ControlNets are trained on: white lines on black for the
edge kinds, near = bright for depth, an OpenPose skeleton on black for pose, a blurred copy of
the picture for tile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sfumato.bridge import schema
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError
from sfumato.core.models.registry import ModelKind

# Every control kind a request may name; the aliases let a ControlNet be found by its id.
_ALIASES = {"lineart": ("lineart", "line"), "scribble": ("scribble", "sketch"),
            "softedge": ("softedge", "hed", "pidi"), "pose": ("openpose", "pose")}
# Every kind of the task contract, with the words a matching model id may contain.
CONTROL_KINDS: dict[str, tuple[str, ...]] = {
    kind: _ALIASES.get(kind, (kind,)) for kind in schema.CONTROL_KINDS}
NEEDS_MODEL = {"depth": ModelKind.DEPTH_ESTIMATOR.value, "pose": ModelKind.POSE_ESTIMATOR.value}


def check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or kind.lower() not in CONTROL_KINDS:
        known = ", ".join(CONTROL_KINDS)
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"unknown control kind {kind!r}; use one of {known}")
    return kind.lower()


def preprocess(kind: str, rgb: np.ndarray, load_model: Callable[[str], Any] | None = None,
               ) -> np.ndarray:
    """The control image for `kind` made from `rgb` ((H, W, 3) uint8), the same size.
    `load_model(model_kind)` gives the loaded depth or pose model when the kind needs one."""
    kind = check_kind(kind)
    if kind in NEEDS_MODEL:
        if load_model is None:
            raise SfumatoError(ErrorCode.UNKNOWN_MODEL, _missing(kind))
        estimator = load_model(NEEDS_MODEL[kind])
        return _depth(rgb, estimator) if kind == "depth" else _pose(rgb, estimator)
    return _WITHOUT_WEIGHTS[kind](rgb)


def missing_model_message(kind: str) -> str:
    return _missing(kind)


def _missing(kind: str) -> str:
    if kind == "depth":
        return ("the depth preprocessor needs a depth-estimation model in the model store, "
                "and none is registered: download a transformers depth model with safetensors "
                "weights (e.g. Depth Anything V2 Small, or Intel/dpt-hybrid-midas) and run "
                "`sfumato models add depth FOLDER`; or send a depth map as the control image")
    return ("the pose preprocessor needs a ViTPose model in the model store, and none is "
            "registered: download a transformers ViTPose model with safetensors weights (e.g. "
            "usyd-community/vitpose-base-simple) and run `sfumato models add pose FOLDER`; or "
            "send a pose image (an OpenPose skeleton on black, from a pose editor or another "
            "tool) as the control image instead of auto")


# --- without weights --------------------------------------------------------------------------


def _grey(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return np.asarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY))


def _three(channel: np.ndarray) -> np.ndarray:
    return np.repeat(channel[..., None], 3, axis=2).astype(np.uint8)


def canny(rgb: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Thin white edges on black: OpenCV's Canny with the thresholds ControlNet was trained on."""
    import cv2

    return _three(cv2.Canny(_grey(rgb), low, high))


def lineart(rgb: np.ndarray) -> np.ndarray:
    """White line drawing on black: where a pixel is darker than its surroundings (the ink of a
    drawing, the contours of a photo), soft-edged like the trained lineart detectors."""
    import cv2

    grey = _grey(rgb).astype(np.float32)
    sigma = max(1.0, min(rgb.shape[:2]) / 256.0)
    local = cv2.GaussianBlur(grey, (0, 0), sigma * 3)
    ink = np.clip((local - cv2.GaussianBlur(grey, (0, 0), sigma * 0.5)) * 6.0, 0, 255)
    return _three(np.rint(ink))


def scribble(rgb: np.ndarray) -> np.ndarray:
    """Bold binary strokes: the picture's main edges, thickened, as a quick sketch would be."""
    import cv2

    grey = cv2.GaussianBlur(_grey(rgb), (0, 0), max(1.0, min(rgb.shape[:2]) / 256.0))
    edges = cv2.Canny(grey, 50, 120)
    width = max(3, (min(rgb.shape[:2]) // 128) | 1)
    return _three(cv2.dilate(edges, np.ones((width, width), np.uint8)))


def softedge(rgb: np.ndarray) -> np.ndarray:
    """Soft grey edges on black (what HED/PiDiNet give): the blurred gradient magnitude,
    normalised so the strongest edge is white."""
    import cv2

    grey = cv2.GaussianBlur(_grey(rgb).astype(np.float32), (0, 0), 1.5)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = cv2.GaussianBlur(np.sqrt(gx * gx + gy * gy), (0, 0), 1.0)
    top = float(magnitude.max())
    if top <= 0:
        return np.zeros_like(rgb, dtype=np.uint8)
    return _three(np.rint(np.sqrt(magnitude / top) * 255))


def tile(rgb: np.ndarray) -> np.ndarray:
    """The picture at a quarter of its resolution, scaled back: tile ControlNets add the detail."""
    import cv2

    height, width = rgb.shape[:2]
    small = cv2.resize(np.ascontiguousarray(rgb), (max(1, width // 4), max(1, height // 4)),
                       interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC))


_WITHOUT_WEIGHTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "canny": canny, "lineart": lineart, "scribble": scribble, "softedge": softedge, "tile": tile,
}


# --- with weights --------------------------------------------------------------------------


def _depth(rgb: np.ndarray, estimator: Any) -> np.ndarray:
    """Relative depth from a transformers depth model, near = white, at the input's size."""
    import torch
    from PIL import Image

    model, processor = estimator.model, estimator.processor
    inputs = processor(images=Image.fromarray(rgb, "RGB"), return_tensors="pt")
    device = next(model.parameters()).device
    with torch.no_grad():
        predicted = model(pixel_values=inputs["pixel_values"].to(device)).predicted_depth
    depth = torch.nn.functional.interpolate(
        predicted.float().reshape(1, 1, *predicted.shape[-2:]), size=rgb.shape[:2],
        mode="bicubic", align_corners=False)[0, 0].cpu().numpy()
    low, high = float(depth.min()), float(depth.max())
    scaled = (depth - low) / (high - low) if high > low else np.zeros_like(depth)
    return _three(np.rint(np.clip(scaled, 0, 1) * 255))


def _pose(rgb: np.ndarray, estimator: Any) -> np.ndarray:
    """The OpenPose skeleton of the figure a ViTPose model finds, on black, at the input's
    size (the whole picture is read as one person's box: core/pose.py)."""
    from sfumato.core.preprocessors.pose import draw_skeleton, estimate_keypoints

    keypoints = estimate_keypoints(rgb, estimator.model, estimator.processor)
    return draw_skeleton(keypoints, rgb.shape[:2])
