"""Where numba keeps compiled kernels, so that later runs start warm.

Nothing here runs on import: the entry points (`timbrel` and `python -m timbrel`, the test
suite's conftest, the benchmarks) call `configure_numba_cache()` before the first kernel
compiles. A library user who never calls it gets numba's own default cache location.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_SOURCES = ("realtime/kernels", "realtime/features")


def source_digest() -> str:
    """A short hash of every numba-compiled source file in the engine.

    numba invalidates a cached function only when its own file changes, not when a kernel
    it calls in another file does; keying the cache folder by all kernel sources makes any
    edit or upgrade start from a clean cache.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for folder in _SOURCES:
        for path in sorted((root / folder).glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def configure_numba_cache() -> None:
    """Point numba's on-disk cache at the user's cache directory unless already set.

    An installed package's own folder may not be writable; the user cache always is.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    from platformdirs import user_cache_dir

    os.environ["NUMBA_CACHE_DIR"] = os.path.join(user_cache_dir("timbrel"), "numba", source_digest())
