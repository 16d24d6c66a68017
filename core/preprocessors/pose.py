"""Body pose for pose ControlNets: COCO keypoints from a ViTPose model, drawn as the OpenPose
skeleton those ControlNets were trained on (coloured limbs and joints on black).

ViTPose is a top-down estimator: it reads one person's box at a time. sfumato has no person
detector, so the whole picture is the one box; it suits a picture framing one figure, the usual
case for an artist's pose reference. The crop and the heatmap decoding are done here with OpenCV
and numpy because transformers' own ViTPose pre/post-processing needs scipy, which the daemon
does not install; the image processor still normalises the crop as its config says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError

# Keypoints whose heatmap peak is below this are left out, with the limbs touching them.
SCORE_THRESHOLD = 0.3
COCO_KEYPOINTS = 17  # the body keypoints, first in COCO-WholeBody models too
# Top-down pose models saw each person's box widened by a quarter (box_to_center_and_scale).
_BOX_PADDING = 1.25

# OpenPose's 18 body points, each as the COCO keypoint it is; the neck (None) is the middle of
# the shoulders, which COCO lacks.
OPENPOSE_FROM_COCO: tuple[int | None, ...] = (
    0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3,
)
# OpenPose limbs as pairs of its points, in the order that gives each its colour.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
# One colour per point (RGB); limb i takes colour i at 60 % (OpenPose blends limbs at 0.6).
COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
LIMB_COLOURS: tuple[tuple[int, int, int], ...] = tuple(
    (int(r * 0.6), int(g * 0.6), int(b * 0.6)) for r, g, b in COLOURS[:len(LIMBS)])


@dataclass(frozen=True)
class Keypoints:
    xy: np.ndarray  # (17, 2) float: COCO body keypoints in picture pixels
    scores: np.ndarray  # (17,) float: the heatmap peak of each


def estimate_keypoints(rgb: np.ndarray, model: Any, processor: Any) -> Keypoints:
    """The COCO body keypoints a ViTPose model finds in `rgb` ((H, W, 3) uint8)."""
    import cv2
    import torch

    height, width = rgb.shape[:2]
    in_h, in_w = int(processor.size["height"]), int(processor.size["width"])
    left, top, step = _box(width, height, in_w, in_h)
    to_model = np.array([[1 / step, 0, -left / step], [0, 1 / step, -top / step]], np.float32)
    crop = cv2.warpAffine(np.ascontiguousarray(rgb), to_model, (in_w, in_h),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # the crop is already the box; only the processor's rescale and normalisation remain
    inputs = processor(images=crop, boxes=[[[0, 0, in_w, in_h]]], do_affine_transform=False,
                       return_tensors="pt")
    device = next(model.parameters()).device
    with torch.no_grad():
        heatmaps = model(
            pixel_values=inputs["pixel_values"].to(device, torch.float32),
            # ViTPose+ models mix experts per data set: 0 is COCO; the others ignore it
            dataset_index=torch.zeros(1, dtype=torch.long, device=device),
        ).heatmaps[0].float().cpu().numpy()
    if heatmaps.shape[0] < COCO_KEYPOINTS:
        raise SfumatoError(ErrorCode.WRONG_MODEL_KIND,
                           f"the pose model gives {heatmaps.shape[0]} keypoints, not the "
                           f"{COCO_KEYPOINTS} COCO body keypoints a pose ControlNet needs")
    peaks, scores = _peaks(heatmaps[:COCO_KEYPOINTS])
    map_h, map_w = heatmaps.shape[1:]
    xy = peaks * np.array([in_w / map_w, in_h / map_h]) * step + np.array([left, top])
    return Keypoints(xy, scores)


def _box(width: int, height: int, in_w: int, in_h: int) -> tuple[float, float, float]:
    """(left, top, picture pixels per model pixel) of the region the model reads: the whole
    picture, widened to the model's aspect and padded as in training, centred."""
    aspect = in_w / in_h
    box_w, box_h = float(width), float(height)
    if box_w > aspect * box_h:
        box_h = box_w / aspect
    else:
        box_w = box_h * aspect
    box_w, box_h = box_w * _BOX_PADDING, box_h * _BOX_PADDING
    return width / 2 - box_w / 2, height / 2 - box_h / 2, box_w / in_w


def _peaks(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) heatmap coordinates (x, y) and (K,) values of each map's peak, moved a quarter
    pixel towards the higher neighbour (the usual sub-pixel refinement)."""
    count, map_h, map_w = heatmaps.shape
    flat = heatmaps.reshape(count, -1)
    index = flat.argmax(axis=1)
    scores = flat[np.arange(count), index].astype(np.float64)
    ys, xs = np.divmod(index, map_w)
    peaks = np.stack([xs, ys], axis=1).astype(np.float64)
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        heatmap = heatmaps[k]
        if 0 < x < map_w - 1:
            peaks[k, 0] += 0.25 * np.sign(heatmap[y, x + 1] - heatmap[y, x - 1])
        if 0 < y < map_h - 1:
            peaks[k, 1] += 0.25 * np.sign(heatmap[y + 1, x] - heatmap[y - 1, x])
    return peaks, scores


def draw_skeleton(keypoints: Keypoints, size: tuple[int, int],
                  threshold: float = SCORE_THRESHOLD) -> np.ndarray:
    """The OpenPose drawing of `keypoints`, (H, W, 3) uint8 for `size` (H, W): limbs then
    joints, without anti-aliasing so every pixel is black or one of the skeleton's colours."""
    import cv2

    height, width = size
    points = _openpose_points(keypoints, threshold)
    half = max(1, round(min(height, width) / 128))  # OpenPose's 4 px at 512
    canvas = np.zeros((height, width, 3), np.uint8)
    for (a, b), colour in zip(LIMBS, LIMB_COLOURS, strict=True):
        start, end = points[a], points[b]
        if start is not None and end is not None:
            cv2.line(canvas, start, end, colour, thickness=2 * half, lineType=cv2.LINE_8)
    for point, colour in zip(points, COLOURS, strict=True):
        if point is not None:
            cv2.circle(canvas, point, half, colour, thickness=-1, lineType=cv2.LINE_8)
    return canvas


def _openpose_points(keypoints: Keypoints, threshold: float) -> list[tuple[int, int] | None]:
    """The 18 OpenPose points in whole pixels; None where the keypoint scored below
    `threshold` (the neck needs both shoulders)."""
    seen = keypoints.scores >= threshold
    shoulders = [5, 6]
    points: list[tuple[int, int] | None] = []
    for coco in OPENPOSE_FROM_COCO:
        if coco is None:
            xy = keypoints.xy[shoulders].mean(axis=0) if seen[shoulders].all() else None
        else:
            xy = keypoints.xy[coco] if seen[coco] else None
        points.append(None if xy is None else (int(round(xy[0])), int(round(xy[1]))))
    return points
