"""Points for Select object from vector layers (Krita's side of GIMP's path anchors): a path
(drawn with the Bezier or polyline tool) gives its anchors, any other shape one point at its
centre, so an artist dots the object with small circles or clicks a path along it on one
vector layer, and marks what is not the object on another.

Krita keeps shapes in points (1/72 inch); the image's resolution turns them into pixels. No
`krita` import: the document and its nodes come in as libkis objects."""

from __future__ import annotations

import re
from typing import Any

from sfumato.bridge.actions import ActionError

from .krita_host import find_layer

Point = tuple[float, float]
POINTS_PER_INCH = 72.0


def vector_layers(document: Any) -> list[tuple[str, str]]:
    """(uniqueId, name) of every vector layer, top first: the docker's include/exclude lists."""
    found: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        for child in reversed(node.childNodes()):
            if child.type() == "vectorlayer":
                found.append((str(child.uniqueId().toString()), child.name()))
            walk(child)

    if document is not None:
        walk(document.rootNode())
    return found


def layer_points(document: Any, layer: str, role: str) -> list[Point]:
    """The centres of the shapes of vector layer `layer` (uniqueId or name), in image pixels;
    `role` ("on the object" / "off the object") words the refusals."""
    node = find_layer(document, layer) if layer else None
    if node is None or node.type() != "vectorlayer":
        raise ActionError(f"Pick the vector layer whose shapes mark the points {role} (dot "
                          "the object with small circles on a vector layer). The image is "
                          "unchanged.")
    x_scale = float(document.xRes()) / POINTS_PER_INCH
    y_scale = float(document.yRes()) / POINTS_PER_INCH
    points = []
    for shape in node.shapes():
        anchors = path_anchors(shape.toSvg())
        if anchors is None:  # not a path: its centre
            box = shape.boundingBox()
            anchors = [(box.x() + box.width() / 2, box.y() + box.height() / 2)]
        points += [(x * x_scale, y * y_scale) for x, y in anchors]
    if not points:
        raise ActionError(f"The vector layer '{node.name()}' has no shapes: draw a small "
                          f"circle {role} on it. The image is unchanged.")
    return points


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# numbers each path command takes, and which of them end at the anchor
_ARITY = {"M": 2, "L": 2, "T": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "A": 7, "Z": 0}


def path_anchors(svg: str) -> list[tuple[float, float]] | None:
    """The anchors of a `<path>` as Krita's Shape.toSvg() writes it (in points, its
    transform applied); None for other elements or a transform this does not read."""
    element = re.match(r"\s*<path\b[^>]*>", svg)
    if element is None:
        return None
    tag = element.group(0)
    data = re.search(r'\sd="([^"]*)"', tag)
    matrix = _transform(re.search(r'\stransform="([^"]*)"', tag))
    if data is None or matrix is None:
        return None
    a, b, c, d, e, f = matrix
    return [(a * x + c * y + e, b * x + d * y + f) for x, y in _anchors(data.group(1))]


def _anchors(data: str) -> list[tuple[float, float]]:
    anchors: list[tuple[float, float]] = []
    x = y = start_x = start_y = 0.0
    for command, numbers in re.findall(r"([MmLlHhVvCcSsQqTtAaZz])([^MmLlHhVvCcSsQqTtAaZz]*)",
                                       data):
        values = [float(v) for v in re.findall(_NUMBER, numbers)]
        kind, relative = command.upper(), command.islower()
        if kind == "Z":
            x, y = start_x, start_y
            continue
        size = _ARITY[kind]
        for i in range(0, len(values) - size + 1, size):
            group = values[i:i + size]
            if kind == "H":
                x = group[0] + (x if relative else 0.0)
            elif kind == "V":
                y = group[0] + (y if relative else 0.0)
            else:
                x, y = group[-2] + (x if relative else 0.0), group[-1] + (y if relative else 0.0)
            if kind == "M" and i == 0:
                start_x, start_y = x, y
            anchors.append((x, y))
    return anchors


def _transform(found: re.Match[str] | None) -> tuple[float, ...] | None:
    if found is None:
        return (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    text = found.group(1).strip()
    values = [float(v) for v in re.findall(_NUMBER, text)]
    if text.startswith("translate") and 1 <= len(values) <= 2:
        return (1.0, 0.0, 0.0, 1.0, values[0], values[1] if len(values) == 2 else 0.0)
    if text.startswith("matrix") and len(values) == 6:
        return tuple(values)
    return None  # anything else (several transforms): the shape's centre instead
