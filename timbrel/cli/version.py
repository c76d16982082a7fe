"""The installed timbrel's version, as the package metadata states it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def installed_version() -> str:
    """The version of the installed `timbrel` distribution, or "unknown" when run from a bare tree."""
    try:
        return version("timbrel")
    except PackageNotFoundError:
        return "unknown"
