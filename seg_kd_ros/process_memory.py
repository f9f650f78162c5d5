"""Keep freed frame-sized memory in the process, so that each new frame does not page-fault.

glibc's malloc serves a block above its mmap threshold (128 KiB at start; raised by some frees,
not by all) with a fresh `mmap`, and gives memory freed at the top of its heap back to the
kernel once more than the trim threshold is free. With camera-sized messages that happens for
most frames, and every 4 KiB page of a fresh block is a page fault when first written:
serialising a 1920x1080 rgb8 Image (what `publish` does) cost about 4500 faults and 6-7 ms here
every time, 1.4 ms with the thresholds raised; in the node the receive, the resizes and the
outputs pay the same (bench/node_latency.py --keep-freed-memory shows it per stage). Raising
both thresholds keeps a few frames' worth of memory in the process for reuse: resident memory
stays at that level instead of going up and down with every frame.
"""

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameters, <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 128 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (call before the first frame).

    Returns:
        True when set; False where the C library is not glibc (nothing changes there).
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
