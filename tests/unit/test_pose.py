"""The OpenPose drawing of COCO keypoints: which joints are joined, in which colours, and what a
low-scoring keypoint leaves out. Pose ControlNets were trained on exactly these drawings."""

from __future__ import annotations

import numpy as np
import pytest
from sfumato.core.preprocessors.pose import Keypoints, draw_skeleton

pytestmark = pytest.mark.unit

# A figure facing the viewer on a 256 px square, COCO order (its left is the picture's right).
FIGURE = {
    "nose": (128, 40), "left_eye": (138, 30), "right_eye": (118, 30),
    "left_ear": (152, 34), "right_ear": (104, 34),
    "left_shoulder": (160, 80), "right_shoulder": (96, 80),
    "left_elbow": (184, 124), "right_elbow": (72, 124),
    "left_wrist": (200, 168), "right_wrist": (56, 168),
    "left_hip": (148, 160), "right_hip": (108, 160),
    "left_knee": (152, 208), "right_knee": (104, 208),
    "left_ankle": (156, 248), "right_ankle": (100, 248),
}
NECK = (128, 80)  # OpenPose's extra point: between the shoulders
# The OpenPose convention: each limb's colour (RGB, at 60 %) and each joint's.
LIMBS = {
    ("neck", "right_shoulder"): (153, 0, 0),
    ("neck", "left_shoulder"): (153, 51, 0),
    ("right_shoulder", "right_elbow"): (153, 102, 0),
    ("right_elbow", "right_wrist"): (153, 153, 0),
    ("left_shoulder", "left_elbow"): (102, 153, 0),
    ("left_elbow", "left_wrist"): (51, 153, 0),
    ("neck", "right_hip"): (0, 153, 0),
    ("right_hip", "right_knee"): (0, 153, 51),
    ("right_knee", "right_ankle"): (0, 153, 102),
    ("neck", "left_hip"): (0, 153, 153),
    ("left_hip", "left_knee"): (0, 102, 153),
    ("left_knee", "left_ankle"): (0, 51, 153),
    ("neck", "nose"): (0, 0, 153),
    ("nose", "right_eye"): (51, 0, 153),
    ("right_eye", "right_ear"): (102, 0, 153),
    ("nose", "left_eye"): (153, 0, 153),
    ("left_eye", "left_ear"): (153, 0, 102),
}
JOINTS = {
    "nose": (255, 0, 0), "neck": (255, 85, 0), "right_shoulder": (255, 170, 0),
    "right_elbow": (255, 255, 0), "right_wrist": (170, 255, 0), "left_shoulder": (85, 255, 0),
    "left_elbow": (0, 255, 0), "left_wrist": (0, 255, 85), "right_hip": (0, 255, 170),
    "right_knee": (0, 255, 255), "right_ankle": (0, 170, 255), "left_hip": (0, 85, 255),
    "left_knee": (0, 0, 255), "left_ankle": (85, 0, 255), "right_eye": (170, 0, 255),
    "left_eye": (255, 0, 255), "right_ear": (255, 0, 170), "left_ear": (255, 0, 85),
}


def _where(name: str) -> tuple[int, int]:
    return NECK if name == "neck" else FIGURE[name]


def _keypoints(low: tuple[str, ...] = ()) -> Keypoints:
    xy = np.array(list(FIGURE.values()), float)
    scores = np.array([0.1 if name in low else 0.9 for name in FIGURE])
    return Keypoints(xy, scores)


def _colour(image: np.ndarray, point: tuple[float, float]) -> tuple[int, ...]:
    x, y = point
    return tuple(int(v) for v in image[int(round(y)), int(round(x))])


def test_limbs_join_the_right_joints_in_the_openpose_colours() -> None:
    drawing = draw_skeleton(_keypoints(), (256, 256))
    assert drawing.shape == (256, 256, 3) and drawing.dtype == np.uint8
    for (a, b), colour in LIMBS.items():
        (ax, ay), (bx, by) = _where(a), _where(b)
        for t in (0.35, 0.5, 0.65):  # along the limb, clear of the joints at its ends
            assert _colour(drawing, (ax + t * (bx - ax), ay + t * (by - ay))) == colour, (a, b)
    for name, colour in JOINTS.items():
        assert _colour(drawing, _where(name)) == colour, name
    palette = {(0, 0, 0), *LIMBS.values(), *JOINTS.values()}
    assert {tuple(int(v) for v in c) for c in np.unique(drawing.reshape(-1, 3), axis=0)} \
        == palette  # every colour used, no blends
    assert (drawing.sum(axis=2) == 0).mean() > 0.8  # thin lines on black
    assert _colour(drawing, (30, 230)) == (0, 0, 0)


def test_a_low_scoring_keypoint_drops_its_joint_and_limbs_only() -> None:
    drawing = draw_skeleton(_keypoints(low=("left_knee", "right_shoulder")), (256, 256))
    used = {tuple(int(v) for v in c) for c in np.unique(drawing.reshape(-1, 3), axis=0)}
    gone = {LIMBS[("left_hip", "left_knee")], LIMBS[("left_knee", "left_ankle")],
            JOINTS["left_knee"], LIMBS[("neck", "right_shoulder")],
            LIMBS[("right_shoulder", "right_elbow")], JOINTS["right_shoulder"],
            # no neck without both shoulders, so nothing that hangs from it
            JOINTS["neck"], LIMBS[("neck", "left_shoulder")], LIMBS[("neck", "right_hip")],
            LIMBS[("neck", "left_hip")], LIMBS[("neck", "nose")]}
    assert not used & gone
    assert JOINTS["left_ankle"] in used and LIMBS[("right_elbow", "right_wrist")] in used
    # everything below the threshold: a black picture; threshold 0: the whole figure again
    assert not draw_skeleton(_keypoints(low=tuple(FIGURE)), (256, 256)).any()
    assert np.array_equal(draw_skeleton(_keypoints(low=tuple(FIGURE)), (256, 256), threshold=0),
                          draw_skeleton(_keypoints(), (256, 256)))


def test_the_drawing_has_the_pictures_size_and_scales_its_strokes() -> None:
    small = draw_skeleton(_keypoints(), (256, 256))
    keypoints = _keypoints()
    large = draw_skeleton(Keypoints(keypoints.xy * 2, keypoints.scores), (512, 600))
    assert large.shape == (512, 600, 3)  # (H, W)
    # across the neck-to-right-shoulder limb: about twice as thick at twice the size
    thick_small = small[70:90, 110].any(axis=1).sum()
    thick_large = large[140:180, 220].any(axis=1).sum()
    assert thick_small >= 3 and thick_large >= 2 * thick_small - 2
    assert np.array_equal(large[:, 512:], np.zeros((512, 88, 3), np.uint8))  # nothing there
    beyond = Keypoints(keypoints.xy + [200, 0], keypoints.scores)  # half the figure off the edge
    clipped = draw_skeleton(beyond, (256, 256))
    assert clipped.shape == (256, 256, 3) and clipped[:, 250:].any() and not clipped[:, :200].any()
