"""The entry point of the `timbrel` command and of `python -m timbrel`.

It points numba's on-disk cache at the user's cache folder, keyed by the kernels' sources,
before anything imports numba: numba reads the cache location as it loads, and compiles
the kernels as their modules are imported. So the command line is imported only after that.
"""

from __future__ import annotations

from timbrel.engine.numba_cache import configure_numba_cache


def main(argv: list[str] | None = None) -> int:
    """Configure the numba cache, then run `timbrel.cli.main(argv)`; returns the exit status."""
    configure_numba_cache()
    from timbrel.cli import main as cli_main  # after the cache is configured (see the module's docstring)

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
