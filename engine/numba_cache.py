"""Where numba keeps compiled kernels, so that later runs start warm.

Nothing here runs on import: the entry points (`timbrel` and `python -m timbrel`, the test
suite's conftest, the benchmarks) call `configure_numba_cache()` before the first kernel
compiles. A library user who never calls it gets numba's own default cache location.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

def source_digest() -> str:
    """A short hash of every numba-compiled source file of timbrel (each `.py` that uses `njit`).

    numba invalidates a cached function only when its own file changes, not when a kernel
    it calls in another file does (the instrument's control frame calls the expression and
    MPE kernels, each in a module of its own); keying the cache folder by all of them makes
    any edit or upgrade start from a clean cache.
    """
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        data = path.read_bytes()
        if b"njit" in data:
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(data)
    return digest.hexdigest()[:16]


def configure_numba_cache() -> None:
    """Point numba's on-disk cache at the user's cache directory unless already set.

    An installed package's own folder may not be writable; the user cache always is.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    from platformdirs import user_cache_dir

    os.environ["NUMBA_CACHE_DIR"] = os.path.join(user_cache_dir("timbrel"), "numba", source_digest())
