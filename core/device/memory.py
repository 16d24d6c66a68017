"""How much memory a device has free right now, for sizing work such as tiles."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator

import torch

_FALLBACK_BYTES = 2 << 30  # when nothing can be read: assume a small machine

# Peak memory of one fp32 forward pass per window (input) pixel, by (architecture, scale),
# measured on the CPU with bench/upscale_memory.py (2026-12-07: RRDBNet x4 8.0-9.2 KB, the
# compact net 0.5-0.8 KB; the larger figure, rounded up). Most of it is the ~64 feature maps
# at output resolution, so it grows with scale².
UPSCALER_BYTES_PER_PIXEL = {("ESRGAN", 4): 9600, ("Compact", 4): 1024}


def free_bytes(device: torch.device) -> int:
    """Free memory on `device`: CUDA's own count for a GPU, MemAvailable for the CPU."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return _available_ram()


def upscaler_bytes_per_pixel(architecture: str, scale: int, element_bytes: int) -> float:
    """Peak bytes one forward pass of an upscaler takes per window pixel: measured where the
    table has the architecture, else a cautious estimate (64 float maps at output size plus
    what the input-size blocks hold). Half precision halves it."""
    measured = UPSCALER_BYTES_PER_PIXEL.get((architecture, scale))
    if measured is not None:
        return measured * element_bytes / 4
    return element_bytes * (512 + 256 * scale * scale)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation failure worth retrying with smaller pieces."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(exc, (oom_type, MemoryError)):  # MemoryError: numpy, or a capped worker
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def release_device_memory() -> None:
    """After running out of memory: collect what the failed attempt left and hand CUDA's
    cached blocks back, so the next, smaller attempt starts from a clean pool."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """While entered, large CPU buffers come from the process heap and go back to it when
    freed, instead of glibc mapping fresh pages for each (and the kernel zeroing them on
    first touch): a network at megapixels allocates gigabytes per pass, layer by layer, and
    those page faults made a 1044² pass of the compact upscaler 2.1x slower here
    (bench/upscale_memory.py --malloc). On exit the defaults come back and the heap's free
    pages return to the system. A no-op where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)  # ctypes int: the largest round value
    libc.mallopt(_M_MMAP_MAX, 0)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)


# mallopt parameters and glibc's defaults (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc


def _available_ram() -> int:
    # MemAvailable counts reclaimable page cache, unlike SC_AVPHYS_PAGES (free pages only).
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return _FALLBACK_BYTES
