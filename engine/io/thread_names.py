"""OS names for timbrel's threads, so `top -H`, `/proc/PID/task/TID/comm` and the live-process
benchmark can tell them apart (Python 3.11 names only its own `threading.Thread` objects)."""

from __future__ import annotations

import ctypes
import threading

_PR_SET_NAME = 15


def name_native_thread() -> None:
    """Give the calling thread's OS name its Python name (the kernel keeps 15 bytes). Best effort:
    where libc has no `prctl` nothing changes."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl(_PR_SET_NAME, ctypes.c_char_p(threading.current_thread().name.encode()[:15]), 0, 0, 0)
