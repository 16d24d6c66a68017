"""What an editor adapter (GIMP, Krita, a test double) offers to the shared actions.

Coordinates: a `Rect` given to `read_pixels` / `read_selection`, or returned by
`selection_bounds`, is in the ACTIVE LAYER's coordinates (0, 0 = the layer's top-left pixel);
positions given to `add_layer` are in IMAGE coordinates. `layer_bounds()` links the two.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from typing import Protocol

from .raster import Layout, Raster
from .selection import Rect


class HostDocument(Protocol):
    def layer_bounds(self) -> Rect:
        """The active layer's offset in the image and its size."""
        ...

    def read_pixels(self, rect: Rect, accepted: Collection[Layout]) -> Raster:
        """The active layer's pixels in `rect`, straight alpha, in the layout that matches the
        image's precision (rgba8 / rgba16, sRGB-encoded, or rgbaf32, linear) when `accepted`
        holds it, else the most precise accepted layout the host can convert to."""
        ...

    def selection_bounds(self) -> Rect | None:
        """The selection's bounding box in layer coordinates, clipped to the layer: None when
        nothing is selected, an empty Rect when the selection misses the layer. Partially
        selected (feathered) pixels count as selected. It must cost what the host's own
        bookkeeping costs, never a read of the whole mask: actions call it so that they read
        only the crop around it, whatever the canvas size. A box larger than the selected
        pixels is allowed (actions tighten it from the mask they read anyway)."""
        ...

    def read_selection(self, rect: Rect) -> Raster | None:
        """The selection over `rect` as a gray8 mask (255 = selected), or None when nothing
        is selected. Outside the canvas counts as not selected."""
        ...

    def add_layer(self, raster: Raster, x: int, y: int, name: str) -> None:
        """A new layer holding `raster`, its top-left at image position (x, y), directly
        above the source layer. The source layer and the selection stay as they are."""
        ...

    def scale_image(self, factor: float) -> None:
        """Scale the whole image and every layer with it, like Image > Scale Image;
        afterwards `layer_bounds()` reports the scaled source layer."""
        ...

    def canvas_size(self) -> tuple[int, int]:
        """The image's (width, height): the canvas the layers sit on."""
        ...

    def grow_canvas(self, left: int, top: int, right: int, bottom: int) -> None:
        """Add `left`... pixels of canvas on each side, like Image > Canvas Size: every layer
        keeps its pixels and moves by (left, top) in image coordinates, none is resized;
        afterwards `layer_bounds()` reports the moved source layer."""
        ...

    def progress(self, fraction: float, text: str) -> None:
        """Show progress; `fraction` is in [0, 1]."""
        ...

    def cancel_requested(self) -> bool:
        """True once the artist asked to stop the running job."""
        ...

    def undo_group(self, name: str) -> AbstractContextManager[None]:
        """Everything done inside is one undo step."""
        ...

    def show_message(self, text: str) -> None:
        """Tell the artist something went wrong (or why nothing happened)."""
        ...

    # Optional, looked up with getattr by the actions: a host that can show step previews
    # defines `show_preview(self, raster: Raster, step: int) -> None` (an rgba8 raster).
    # A host that keeps what made a result with it defines `keep_recipe(self, text: str) ->
    # None`: store `text` (bridge/recipe.py JSON) with the layer `add_layer` just made, so that
    # it is saved with the document (GIMP: a layer parasite; Krita: an annotation).


class LayerReader(Protocol):
    """Optional for a HostDocument: reading layers other than the active one, for controls and
    image prompts (bridge/guides.py). Actions check for it and tell the artist when a host's
    adapter lacks it, so adapters written before it keep working."""

    def read_layer(self, layer: str, rect: Rect | None,
                   accepted: Collection[Layout]) -> Raster | None:
        """Pixels of another layer, found by the host's id or name, in the layout rule of
        `read_pixels`. `rect` is in ACTIVE layer coordinates (the image area that
        `read_pixels(rect)` covers); where that layer has no pixels they are transparent.
        `rect` None: that layer's whole extent. None when there is no such layer."""
        ...
