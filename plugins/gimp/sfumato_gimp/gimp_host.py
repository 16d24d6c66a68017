"""GIMP 3's side of `HostDocument`: one image and its active layer, through Gegl buffers."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402
from sfumato.bridge.raster import Layout, Raster  # noqa: E402
from sfumato.bridge.recipe import RECIPE_KEY  # noqa: E402
from sfumato.bridge.selection import Rect, crop  # noqa: E402

# Babl formats: 8/16-bit values travel sRGB-encoded (R'G'B'A), float ones linear (RGBA), as
# bridge/raster.py documents. u16 is native byte order, little-endian on every GIMP 3 platform.
FORMATS = {
    Layout.RGBA8: "R'G'B'A u8",
    Layout.RGBA16: "R'G'B'A u16",
    Layout.RGBAF32: "RGBA float",
}
MASK_FORMAT = "Y u8"


def layout_for(precision: Gimp.Precision) -> Layout:
    """The wire layout that keeps an image's precision: u8 stays 8-bit, u16/u32 go as 16-bit,
    half/float/double as float32."""
    name = precision.value_name.upper()  # e.g. GIMP_PRECISION_U16_NON_LINEAR
    if "_U8_" in name:
        return Layout.RGBA8
    if "_U16_" in name or "_U32_" in name:
        return Layout.RGBA16
    return Layout.RGBAF32


class GimpHost:
    """The active layer of `image`. `interactive` decides whether messages pop up (a script
    gets them as the procedure's error instead)."""

    def __init__(self, image: Gimp.Image, layer: Gimp.Layer, interactive: bool) -> None:
        self.image = image
        self.layer = layer
        self.interactive = interactive
        self.layout = layout_for(image.get_precision())
        self.messages: list[str] = []
        self._progress_started = False

    def layer_bounds(self) -> Rect:
        _, x, y = self.layer.get_offsets()
        return Rect(x, y, self.layer.get_width(), self.layer.get_height())

    def read_pixels(self, rect: Rect, accepted: Collection[Layout]) -> Raster:
        layout = self.layout if self.layout in accepted else _most_precise(accepted)
        data = self.layer.get_buffer().get(_gegl_rect(rect), 1.0, FORMATS[layout],
                                           Gegl.AbyssPolicy.NONE)
        return Raster(rect.width, rect.height, layout, bytes(data))

    def read_layer(self, layer: str, rect: Rect | None,
                   accepted: Collection[Layout]) -> Raster | None:
        """Another layer of this image, by item id (what the procedures pass) or name; `rect`
        in the active layer's coordinates, transparent where that layer has no pixels."""
        other = self._find_layer(layer)
        if other is None:
            return None
        if rect is None:
            rect = Rect(0, 0, other.get_width(), other.get_height())
        else:
            here, there = self.layer_bounds(), other.get_offsets()
            rect = rect.moved(here.x - there[1], here.y - there[2])
        layout = self.layout if self.layout in accepted else _most_precise(accepted)
        data = other.get_buffer().get(_gegl_rect(rect), 1.0, FORMATS[layout],
                                      Gegl.AbyssPolicy.NONE)  # outside: transparent
        return Raster(rect.width, rect.height, layout, bytes(data))

    def _find_layer(self, layer: str) -> Gimp.Layer | None:
        if layer.isdigit():
            item = Gimp.Item.get_by_id(int(layer))
            if isinstance(item, Gimp.Layer) and item.get_image().get_id() == self.image.get_id():
                return item
        found = self.image.get_layer_by_name(layer)
        return found if isinstance(found, Gimp.Layer) else None

    def selection_bounds(self) -> Rect | None:
        # GIMP keeps the selection channel's bounds itself (image coordinates, clipped to the
        # canvas, x2/y2 exclusive, feathered edges included): no mask pixel crosses over to
        # the plug-in. GIMP 3.0 answers (success, non_empty, x1, y1, x2, y2).
        _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(self.image)
        if not non_empty:
            return None
        layer = self.layer_bounds()
        return Rect(x1, y1, x2 - x1, y2 - y1).clamped(layer).moved(-layer.x, -layer.y)

    def read_selection(self, rect: Rect) -> Raster | None:
        if Gimp.Selection.is_empty(self.image):
            return None
        bounds = self.layer_bounds()
        # The selection lives in image coordinates; outside the canvas the abyss reads as 0.
        data = self.image.get_selection().get_buffer().get(
            _gegl_rect(rect.moved(bounds.x, bounds.y)), 1.0, MASK_FORMAT, Gegl.AbyssPolicy.NONE)
        return Raster(rect.width, rect.height, Layout.GRAY8, bytes(data))

    def add_layer(self, raster: Raster, x: int, y: int, name: str) -> None:
        if raster.layout not in FORMATS:
            raise ValueError(f"cannot make a layer from {raster.layout.value} pixels")
        gray = self.image.get_base_type() == Gimp.ImageBaseType.GRAY
        kind = Gimp.ImageType.GRAYA_IMAGE if gray else Gimp.ImageType.RGBA_IMAGE
        # The layer takes the image's precision and Gegl converts from the raster's format.
        # It is filled before it joins the image, so a failure cannot leave a blank layer.
        layer = Gimp.Layer.new(self.image, name, raster.width, raster.height, kind, 100.0,
                               Gimp.LayerMode.NORMAL)
        if not self._linear_light():
            # The daemon blended the feathered edge in the image's own sRGB-encoded values,
            # as the CLI's output does; GIMP 3 composites a normal layer in linear light and
            # would show up to ~70 levels more at the edge. The artist sees what was computed.
            # (A linear-light image stays linear: converting every pixel under the layer to
            # sRGB and back would move untouched float pixels by rounding.)
            layer.set_composite_space(Gimp.LayerColorSpace.RGB_NON_LINEAR)
            layer.set_blend_space(Gimp.LayerColorSpace.RGB_NON_LINEAR)
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, raster.width, raster.height),
                   FORMATS[raster.layout], raster.packed_bytes())
        buffer.flush()  # hand the tiles back to GIMP before the layer is used
        self.image.insert_layer(layer, self.layer.get_parent(),
                                self.image.get_item_position(self.layer))
        layer.set_offsets(x, y)
        layer.update(0, 0, raster.width, raster.height)

    def replace_selection(self, mask: Raster, x: int, y: int) -> None:
        """The selection becomes `mask` (gray8, its top-left at image (x, y); nothing
        selected outside it). Through a channel GIMP selects from and then drops, so the
        change is undoable in the caller's undo group; no layer is touched."""
        channel = self._mask_channel(mask, x, y, "sfumato selection")
        self.image.insert_channel(channel, None, 0)
        self.image.select_item(Gimp.ChannelOps.REPLACE, channel)
        self.image.remove_channel(channel)

    def add_channel(self, mask: Raster, x: int, y: int, name: str) -> None:
        """`mask` kept as a new channel (Channels dock); the selection stays as it is."""
        self.image.insert_channel(self._mask_channel(mask, x, y, name), None, 0)

    def _mask_channel(self, mask: Raster, x: int, y: int, name: str) -> Gimp.Channel:
        width, height = self.image.get_width(), self.image.get_height()
        channel = Gimp.Channel.new(self.image, name, width, height, 50.0,
                                   Gegl.Color.new("black"))  # starts all unselected
        area = Rect(x, y, mask.width, mask.height).clamped(Rect(0, 0, width, height))
        if not area.is_empty:  # filled before it joins the image: no half channel
            buffer = channel.get_buffer()
            buffer.set(_gegl_rect(area), MASK_FORMAT,
                       crop(mask, area.moved(-x, -y)).packed_bytes())
            buffer.flush()
        return channel

    def _linear_light(self) -> bool:
        nick = self.image.get_precision().value_nick  # e.g. "u8-non-linear", "float-linear"
        return nick.endswith("-linear") and not nick.endswith("non-linear")

    def scale_image(self, factor: float) -> None:
        width = max(1, round(self.image.get_width() * factor))
        height = max(1, round(self.image.get_height() * factor))
        self.image.scale(width, height)

    def canvas_size(self) -> tuple[int, int]:
        return self.image.get_width(), self.image.get_height()

    def keep_recipe(self, text: str) -> None:
        """What made the layer just added (directly above the source), as a persistent
        parasite: saved in the .xcf, undone with the layer."""
        parent = self.layer.get_parent()
        siblings = parent.get_children() if parent is not None else self.image.get_layers()
        newest = siblings[self.image.get_item_position(self.layer) - 1]
        flags = Gimp.PARASITE_PERSISTENT | Gimp.PARASITE_UNDOABLE
        newest.attach_parasite(Gimp.Parasite.new(RECIPE_KEY, flags, list(text.encode())))

    def grow_canvas(self, left: int, top: int, right: int, bottom: int) -> None:
        # Image > Canvas Size: layers move by the offset and keep their size and pixels
        self.image.resize(self.image.get_width() + left + right,
                          self.image.get_height() + top + bottom, left, top)

    def progress(self, fraction: float, text: str) -> None:
        if not self._progress_started:
            Gimp.progress_init(text)
            self._progress_started = True
        else:
            Gimp.progress_set_text(text)
        Gimp.progress_update(max(0.0, min(1.0, fraction)))

    def cancel_requested(self) -> bool:
        # GIMP has no cancel poll for plug-ins: its Cancel button ends the plug-in process,
        # which is safe because layers are only made after the result arrived.
        return False

    @contextmanager
    def undo_group(self, name: str) -> Iterator[None]:
        self.image.undo_group_start()
        try:
            yield
        finally:
            self.image.undo_group_end()
            Gimp.displays_flush()

    def show_message(self, text: str) -> None:
        self.messages.append(text)
        if self.interactive:
            Gimp.message(text)


def _most_precise(accepted: Collection[Layout]) -> Layout:
    for layout in (Layout.RGBAF32, Layout.RGBA16, Layout.RGBA8):
        if layout in accepted:
            return layout
    raise ValueError("the daemon accepts no RGBA layout GIMP can produce")


def _gegl_rect(rect: Rect) -> Gegl.Rectangle:
    return Gegl.Rectangle.new(rect.x, rect.y, rect.width, rect.height)
