"""An in-memory HostDocument for tests of bridge/actions.py: one layer in a canvas, every call
recorded in `log`. Pixels are a fixed pattern, or `image` when given. Pixels and the selection
mask are made only for the rectangle read, so a huge canvas costs nothing until it is read."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from sfumato.bridge.raster import Layout, Raster
from sfumato.bridge.selection import Rect, crop

_PATTERN = bytes(range(251))


def pixels(width: int, height: int, layout: Layout = Layout.RGBA8) -> Raster:
    """Byte i is i % 251, made for the size asked only (a huge canvas is never allocated)."""
    size = width * height * layout.bytes_per_pixel
    return Raster(width, height, layout, (_PATTERN * (size // 251 + 1))[:size])


class FakeHost:
    """A layer of `size` at `offset`; `selection` is a rectangle in layer coordinates
    (`empty_selection`: a selection that misses the layer)."""

    def __init__(self, size: tuple[int, int], offset: tuple[int, int] = (0, 0),
                 selection: Rect | None = None, empty_selection: bool = False,
                 layout: Layout = Layout.RGBA8, image: Raster | None = None,
                 others: dict[str, tuple[Raster, int, int]] | None = None,
                 canvas: tuple[int, int] | None = None, keeps_recipes: bool = False) -> None:
        self.width, self.height = size
        self.x, self.y = offset
        # the image's size; default: just holding the layer
        self.canvas = canvas or (offset[0] + size[0], offset[1] + size[1])
        self.recipes: dict[str, str] = {}  # layer name -> recipe text (keeps_recipes)
        if keeps_recipes:  # the optional capability, as GIMP's and Krita's adapters have it
            self.keep_recipe = self._keep_recipe
        self.layout = image.layout if image is not None else layout
        self.image = image
        self.selection = selection
        self.empty_selection = empty_selection
        self.log: list[tuple[Any, ...]] = []
        self.layers: list[tuple[Raster, int, int, str]] = []
        self.messages: list[str] = []
        self.progress_seen: list[tuple[float, str]] = []
        self.cancel = False
        self.others = others or {}  # other layers: name -> (pixels, x, y in the image)
        self.selection_mask: tuple[Raster, int, int] | None = None  # set by replace_selection
        self.channels: list[tuple[Raster, int, int, str]] = []

    def layer_bounds(self) -> Rect:
        return Rect(self.x, self.y, self.width, self.height)

    def read_pixels(self, rect: Rect, accepted: Collection[Layout]) -> Raster:
        layout = self.layout if self.layout in accepted else Layout.RGBA16
        self.log.append(("read_pixels", rect, layout))
        if self.image is not None and layout is self.image.layout:
            return crop(self.image, rect)
        return pixels(rect.width, rect.height, layout)

    def read_layer(self, layer: str, rect: Rect | None,
                   accepted: Collection[Layout]) -> Raster | None:
        """Another layer's pixels over `rect` (active layer coordinates), transparent where
        that layer has none; None when there is no such layer."""
        self.log.append(("read_layer", layer, rect))
        if layer not in self.others:
            return None
        raster, x, y = self.others[layer]
        if rect is None:
            return raster
        area = rect.moved(self.x - x, self.y - y)  # in the other layer's coordinates
        inside = area.clamped(Rect(0, 0, raster.width, raster.height))
        bpp = raster.layout.bytes_per_pixel
        blank = bytes(area.width * bpp)
        if inside.is_empty:
            return Raster(area.width, area.height, raster.layout, blank * area.height)
        part = crop(raster, inside).packed_bytes()
        row_bytes = inside.width * bpp
        rows = []
        for row in range(area.y, area.bottom):
            if inside.y <= row < inside.bottom:
                start = (row - inside.y) * row_bytes
                rows.append(bytes((inside.x - area.x) * bpp) + part[start:start + row_bytes]
                            + bytes((area.right - inside.right) * bpp))
            else:
                rows.append(blank)
        return Raster(area.width, area.height, raster.layout, b"".join(rows))

    def selection_bounds(self) -> Rect | None:
        self.log.append(("selection_bounds",))
        if self.selection is None:
            return Rect(0, 0, 0, 0) if self.empty_selection else None
        return self.selection.clamped(Rect(0, 0, self.width, self.height))

    def read_selection(self, rect: Rect) -> Raster | None:
        self.log.append(("read_selection", rect))
        if self.selection is None and not self.empty_selection:
            return None
        # Built row by row for `rect` only, like pixels: cheap on any canvas size.
        inside = Rect(0, 0, 0, 0) if self.selection is None else self.selection.clamped(rect)
        if inside.is_empty:
            return Raster(rect.width, rect.height, Layout.GRAY8, bytes(rect.width * rect.height))
        row = (bytes(inside.x - rect.x) + b"\xff" * inside.width
               + bytes(rect.right - inside.right))
        blank = bytes(rect.width)
        rows = [row if inside.y <= y < inside.bottom else blank
                for y in range(rect.y, rect.bottom)]
        return Raster(rect.width, rect.height, Layout.GRAY8, b"".join(rows))

    def add_layer(self, raster: Raster, x: int, y: int, name: str) -> None:
        self.log.append(("add_layer", x, y, name))
        self.layers.append((raster, x, y, name))

    def replace_selection(self, mask: Raster, x: int, y: int) -> None:
        """The selection becomes `mask` at image (x, y) (bridge/select_object.py)."""
        self.log.append(("replace_selection", x, y))
        self.selection_mask = (mask, x, y)

    def add_channel(self, mask: Raster, x: int, y: int, name: str) -> None:
        self.log.append(("add_channel", x, y, name))
        self.channels.append((mask, x, y, name))

    def scale_image(self, factor: float) -> None:
        self.log.append(("scale_image", factor))
        self.x, self.y = round(self.x * factor), round(self.y * factor)
        self.width, self.height = round(self.width * factor), round(self.height * factor)

    def _keep_recipe(self, text: str) -> None:
        self.log.append(("keep_recipe",))
        self.recipes[self.layers[-1][3]] = text

    def canvas_size(self) -> tuple[int, int]:
        return self.canvas

    def grow_canvas(self, left: int, top: int, right: int, bottom: int) -> None:
        self.log.append(("grow_canvas", left, top, right, bottom))
        self.canvas = (self.canvas[0] + left + right, self.canvas[1] + top + bottom)
        self.x, self.y = self.x + left, self.y + top

    def progress(self, fraction: float, text: str) -> None:
        self.progress_seen.append((fraction, text))

    def cancel_requested(self) -> bool:
        return self.cancel

    @contextmanager
    def undo_group(self, name: str) -> Iterator[None]:
        self.log.append(("undo_start", name))
        try:
            yield
        finally:
            self.log.append(("undo_end", name))

    def show_message(self, text: str) -> None:
        self.messages.append(text)
