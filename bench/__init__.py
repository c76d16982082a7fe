"""Benchmarks: each module runs as `python -m bench.NAME`, prints a table and writes JSON to
`bench/results/`. Being entry points, they point numba's cache at the user's cache folder
here, before any of them imports a kernel."""

from timbrel.engine.numba_cache import configure_numba_cache

configure_numba_cache()
