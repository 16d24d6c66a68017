"""Keys pressed on an X display as an artist would (XTest through ctypes: libX11 and libxtst6,
which .ci/run installs), for host tests of what only a window can do, such as GIMP's Undo.
The pointer goes to the middle of the largest mapped window, which gets the focus."""

from __future__ import annotations

import ctypes
import time


class _Attributes(ctypes.Structure):  # XWindowAttributes
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("width", ctypes.c_int),
                ("height", ctypes.c_int), ("border_width", ctypes.c_int),
                ("depth", ctypes.c_int), ("visual", ctypes.c_void_p), ("root", ctypes.c_ulong),
                ("c_class", ctypes.c_int), ("bit_gravity", ctypes.c_int),
                ("win_gravity", ctypes.c_int), ("backing_store", ctypes.c_int),
                ("backing_planes", ctypes.c_ulong), ("backing_pixel", ctypes.c_ulong),
                ("save_under", ctypes.c_int), ("colormap", ctypes.c_ulong),
                ("map_installed", ctypes.c_int), ("map_state", ctypes.c_int),
                ("all_event_masks", ctypes.c_long), ("your_event_mask", ctypes.c_long),
                ("do_not_propagate_mask", ctypes.c_long), ("override_redirect", ctypes.c_int),
                ("screen", ctypes.c_void_p)]


IS_VIEWABLE = 2
REVERT_TO_PARENT = 2


def press(display: str, *keys: str) -> None:
    """Press `keys` (X keysym names, e.g. "Control_L", "z") together, then release them."""
    try:
        x11 = ctypes.CDLL("libX11.so.6")
        xtest = ctypes.CDLL("libXtst.so.6")
    except OSError as exc:
        raise RuntimeError(f"{exc}: `apt-get install libx11-6 libxtst6` (.ci/run does)") from exc
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XStringToKeysym.restype = ctypes.c_ulong
    handle = x11.XOpenDisplay(display.encode())
    if not handle:
        raise RuntimeError(f"cannot open X display {display}")
    dpy = ctypes.c_void_p(handle)
    try:
        window, attrs = _largest_window(x11, dpy)
        xtest.XTestFakeMotionEvent(dpy, -1, attrs.x + attrs.width // 2,
                                   attrs.y + attrs.height // 2, 0)
        x11.XSetInputFocus(dpy, ctypes.c_ulong(window), REVERT_TO_PARENT, 0)
        x11.XFlush(dpy)
        time.sleep(0.3)
        codes = [x11.XKeysymToKeycode(dpy, ctypes.c_ulong(x11.XStringToKeysym(k.encode())))
                 for k in keys]
        for code, down in [(c, 1) for c in codes] + [(c, 0) for c in reversed(codes)]:
            xtest.XTestFakeKeyEvent(dpy, code, down, 0)
            x11.XFlush(dpy)
            time.sleep(0.05)
    finally:
        x11.XCloseDisplay(dpy)


def _largest_window(x11: ctypes.CDLL, dpy: ctypes.c_void_p) -> tuple[int, _Attributes]:
    root = x11.XDefaultRootWindow(dpy)
    parent, top = ctypes.c_ulong(), ctypes.c_ulong()
    children, count = ctypes.POINTER(ctypes.c_ulong)(), ctypes.c_uint()
    x11.XQueryTree(dpy, ctypes.c_ulong(root), ctypes.byref(top), ctypes.byref(parent),
                   ctypes.byref(children), ctypes.byref(count))
    best: tuple[int, _Attributes] | None = None
    for i in range(count.value):
        attrs = _Attributes()
        x11.XGetWindowAttributes(dpy, ctypes.c_ulong(children[i]), ctypes.byref(attrs))
        if attrs.map_state == IS_VIEWABLE and not attrs.override_redirect and (
                best is None or attrs.width * attrs.height > best[1].width * best[1].height):
            best = (children[i], attrs)
    if count.value:
        x11.XFree(children)
    if best is None:
        raise RuntimeError("no window is shown on the display")
    return best
