"""Preset names: how they are compared (`fold`), the file stem they get (`slug`), and which are usable."""

from __future__ import annotations

import re
import unicodedata

from timbrel.engine.errors import TimbrelError
from timbrel.presets.faults import kind_of, shown

MAX_NAME_CHARS = 64


def fold(text: str) -> str:
    """`text` case-folded with accents removed: how names, tags and queries are compared."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def slug(name: str) -> str:
    """The file stem for a preset name: lower case, accents dropped, runs of other characters as '-'.

    `slug("Alto Sax") == "alto-sax"`, `slug("Violon à cordes") == "violon-a-cordes"`.
    """
    return re.sub(r"[\W_]+", "-", fold(name)).strip("-")


def check_name(name: object) -> str:
    """`name` stripped, if usable as a preset name; else TimbrelError saying why."""
    if not isinstance(name, str):
        raise TimbrelError(f"a preset name must be text, not {kind_of(name)}")
    stripped = name.strip()
    if not stripped:
        raise TimbrelError("a preset name cannot be empty")
    if len(stripped) > MAX_NAME_CHARS:
        raise TimbrelError(f"preset name {shown(stripped)} is longer than {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(c).startswith("C") for c in stripped):
        raise TimbrelError(f"preset name {shown(stripped)} contains control characters")
    if not slug(stripped):
        raise TimbrelError(f"preset name {shown(stripped)} needs at least one letter or digit")
    return stripped
