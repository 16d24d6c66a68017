"""Krita's points for Select object (plugins/krita/sfumato_krita/vector_points.py) on stand-in
libkis objects: a vector layer's paths give their anchors, other shapes one point at their
centres, from Krita's points (1/72 inch) into the image's pixels; a missing or empty layer
is refused saying what to do. (The real Krita runs the same code in
tests/host/test_krita_plugin.py.)"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from sfumato.bridge.actions import ActionError

pytestmark = pytest.mark.unit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "krita"))
from sfumato_krita.vector_points import layer_points, path_anchors, vector_layers  # noqa: E402


class _Box:
    def __init__(self, x: float, y: float, w: float, h: float) -> None:
        self._r = (x, y, w, h)

    def x(self) -> float:
        return self._r[0]

    def y(self) -> float:
        return self._r[1]

    def width(self) -> float:
        return self._r[2]

    def height(self) -> float:
        return self._r[3]


class _Shape:
    def __init__(self, *box: float, svg: str = '<circle id="shape0" r="3"/>') -> None:
        self.box, self.svg = _Box(*box), svg

    def boundingBox(self) -> _Box:  # noqa: N802 - libkis's name
        return self.box

    def toSvg(self) -> str:  # noqa: N802
        return self.svg


class _Id:
    def __init__(self, text: str) -> None:
        self.text = text

    def toString(self) -> str:  # noqa: N802
        return self.text


class _Node:
    def __init__(self, name: str, kind: str, shapes: list[_Shape] | None = None,
                 children: list[_Node] | None = None) -> None:
        self._name, self._kind, self._shapes = name, kind, shapes or []
        self._children = children or []

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return self._kind

    def uniqueId(self) -> _Id:  # noqa: N802
        return _Id("{" + self._name + "}")

    def shapes(self) -> list[_Shape]:
        return self._shapes

    def childNodes(self) -> list[_Node]:  # noqa: N802
        return self._children


class _Document:
    def __init__(self, root: _Node, ppi: float) -> None:
        self.root, self.ppi = root, ppi

    def rootNode(self) -> _Node:  # noqa: N802
        return self.root

    def xRes(self) -> float:  # noqa: N802
        return self.ppi

    def yRes(self) -> float:  # noqa: N802
        return self.ppi


def _document(ppi: float = 144.0) -> Any:
    path = ('<path id="shape0" transform="translate(15, 27)" fill="none" d="M0 0L40 40L80 0" '
            'sodipodi:nodetypes="ccc"/>')  # as Krita 5.1's Shape.toSvg() writes a path
    dots = _Node("dots", "vectorlayer", [_Shape(37, 27, 6, 6), _Shape(10, 0, 4, 2),
                                         _Shape(15, 27, 80, 40, svg=path)])
    empty = _Node("empty", "vectorlayer")
    paint = _Node("paint", "paintlayer")
    group = _Node("group", "grouplayer", children=[empty])
    return _Document(_Node("root", "grouplayer", children=[paint, dots, group]), ppi)


def test_each_shape_is_a_point_at_its_centre_in_pixels() -> None:
    # 144 ppi: a point (1/72 inch) is two pixels
    assert layer_points(_document(), "{dots}", "on the object") == [
        (80.0, 60.0), (24.0, 2.0), (30.0, 54.0), (110.0, 134.0), (190.0, 54.0)]
    assert layer_points(_document(72.0), "dots", "on the object") == [
        (40.0, 30.0), (12.0, 1.0), (15.0, 27.0), (55.0, 67.0), (95.0, 27.0)]


@pytest.mark.parametrize("svg,anchors", [
    ('<path d="M1 2 l3 4 h5 v-2 C 1 1 2 2 10 10 Z" transform="matrix(2 0 0 2 1 1)"/>',
     [(3.0, 5.0), (9.0, 13.0), (19.0, 13.0), (19.0, 9.0), (21.0, 21.0)]),
    ('<path d="M0 0L4 0" transform="rotate(30) translate(2, 2)"/>', None),  # centre instead
    ('<rect width="4" height="2"/>', None),
])
def test_path_anchors_follow_the_commands_and_the_transform(
        svg: str, anchors: list[tuple[float, float]] | None) -> None:
    assert path_anchors(svg) == anchors


def test_vector_layers_are_listed_top_first_groups_included() -> None:
    assert vector_layers(_document()) == [("{empty}", "empty"), ("{dots}", "dots")]


@pytest.mark.parametrize("layer,says", [("", "Pick the vector layer"),
                                        ("{paint}", "Pick the vector layer"),
                                        ("{empty}", "has no shapes")])
def test_no_usable_layer_is_refused_saying_what_to_do(layer: str, says: str) -> None:
    with pytest.raises(ActionError, match=says) as refused:
        layer_points(_document(), layer, "off the object")
    assert "off the object" in str(refused.value) and "unchanged" in str(refused.value)
