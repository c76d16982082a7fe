"""Where numba keeps compiled kernels, so that later runs start warm."""

from __future__ import annotations

import os


def configure_numba_cache() -> None:
    """Point numba's on-disk cache at the user's cache directory unless already set.

    An installed package's own folder may not be writable; the user cache always is.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    from platformdirs import user_cache_dir

    os.environ["NUMBA_CACHE_DIR"] = os.path.join(user_cache_dir("timbrel"), "numba")
