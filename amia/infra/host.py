"""How this process uses the host: torch's CPU threads and the C allocator's handling of freed memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def set_threads(threads: int, processes: int = 1) -> None:
    """Torch's CPU threads: ``threads`` if given, else ``OMP_NUM_THREADS`` if set, else the cores shared among the
    ``processes`` of this machine. Also keeps freed memory for reuse (``retain_freed_memory``)."""
    retain_freed_memory()
    env = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(threads or (int(env) if env.isdigit() and int(env) > 0 else
                                      max(1, (os.cpu_count() or 1) // processes)))


def retain_freed_memory(keep_bytes: int = 1 << 30) -> bool:
    """Ask glibc to keep up to ``keep_bytes`` of freed memory and to serve blocks up to 32 MiB from it.

    A training step allocates and frees a few hundred MB of activations; by default glibc returns blocks above
    a moving threshold to the kernel at once, and every step then pays page faults on fresh memory (half the
    CPU time of a default training step here went to the kernel: docs/findings.md, section 1). A no-op (False)
    off glibc; True once set. Setting it again is harmless.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(min(keep_bytes, 2**31 - 1)))
                and mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(32 << 20)))


__all__ = ["retain_freed_memory", "set_threads"]
