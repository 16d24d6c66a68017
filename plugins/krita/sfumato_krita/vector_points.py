"""Points for Select object from vector layers (Krita's side of GIMP's path anchors): every
shape of the chosen vector layer marks one point at its centre, so an artist dots the object
with small circles (or any shapes) on one vector layer, and what is not the object on another.

Krita keeps shapes in points (1/72 inch); the image's resolution turns them into pixels. No
`krita` import: the document and its nodes come in as libkis objects."""

from __future__ import annotations

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
        box = shape.boundingBox()
        points.append(((box.x() + box.width() / 2) * x_scale,
                       (box.y() + box.height() / 2) * y_scale))
    if not points:
        raise ActionError(f"The vector layer '{node.name()}' has no shapes: draw a small "
                          f"circle {role} on it. The image is unchanged.")
    return points
