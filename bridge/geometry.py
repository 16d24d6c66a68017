"""The one rectangle type, and how far a task reaches around a selection.

The bridge crops what it sends with `task_reach`; the daemon plans its work with the same
functions inside what it was sent, so both sides agree on the area without sending it back.
Standard library only: it runs inside GIMP's and Krita's Python.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rect:
    """A pixel rectangle: top-left (x, y) and size; it covers [x, right) x [y, bottom)."""

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def from_edges(cls, left: int, top: int, right: int, bottom: int) -> Rect:
        return cls(left, top, right - left, bottom - top)

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index an (H, W, ...) array with this rectangle: `array[rect.slices]`."""
        return slice(self.y, self.bottom), slice(self.x, self.right)

    def grown(self, margin: int) -> Rect:
        return Rect(self.x - margin, self.y - margin, self.width + 2 * margin,
                    self.height + 2 * margin)

    def clamped(self, bounds: Rect) -> Rect:
        """The part of this rectangle inside `bounds` (empty when they do not meet)."""
        x0, y0 = max(self.x, bounds.x), max(self.y, bounds.y)
        x1, y1 = min(self.right, bounds.right), min(self.bottom, bounds.bottom)
        return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def within(self, width: int, height: int) -> Rect:
        """The part inside a width x height image whose top-left is (0, 0)."""
        return self.clamped(Rect(0, 0, width, height))

    def moved(self, dx: int, dy: int) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.width, self.height)


def feather_spread(feather_px: int) -> int:
    """How far outward a feather of `feather_px` reaches past the grown selection: the
    daemon's soft mask dilates by half the width and blurs within the same radius."""
    return (max(0, feather_px) + 1) // 2


def mask_reach(grow_px: int, feather_px: int) -> int:
    """How far (Chebyshev pixels) the grown and feathered selection spreads outward; past it
    every pixel of the result is the input's own."""
    return max(0, grow_px) + 2 * feather_spread(feather_px)


def task_reach(grow_px: int, feather_px: int, context_px: int) -> int:
    """How far past the selection's bounding box a diffusion task reads: the soft mask's
    reach, then the context the model sees around it."""
    return mask_reach(grow_px, feather_px) + max(0, context_px)
