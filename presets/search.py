"""Searching presets: every query word must match a name, tag, category or description word,
by equality, prefix, substring or similarity, accents and case folded; best matches first."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from timbrel.presets.names import fold, slug
from timbrel.presets.preset import Preset

FUZZY_RATIO = 0.75
"""Least `difflib.SequenceMatcher.ratio` at which a query word matches a word by similarity."""


_FIELD_WEIGHTS = {"name": 3.0, "tags": 2.0, "category": 2.0, "description": 1.0}


_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def _match(query: str, word: str) -> float:
    """How well one query word matches one word: 1 equal, 0.9 prefix, 0.7 substring, ≤ 0.6 similar, 0 not."""
    if query == word:
        return 1.0
    if word.startswith(query):
        return 0.9
    if len(query) >= 3 and query in word:
        return 0.7
    ratio = SequenceMatcher(None, query, word).ratio()
    return 0.6 * ratio if ratio >= FUZZY_RATIO else 0.0


def search_presets(presets: list[Preset], query: str) -> list[Preset]:
    """`presets` matching every word of `query`, best first (see `Library.search`)."""
    words = _words(query)
    if not words:
        return presets
    ranked = []
    for order, preset in enumerate(presets):
        found = _score(preset, query, words)
        if found is not None:
            ranked.append((found, order, preset))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [preset for _, _, preset in ranked]


def _score(preset: Preset, query: str, words: list[str]) -> tuple | None:
    """A sort key (smaller is better) for a preset every query word matches; None otherwise."""
    fields = {
        "name": _words(preset.name),
        "tags": [w for tag in preset.tags for w in _words(tag)],
        "category": _words(preset.category),
        "description": _words(preset.description),
    }
    total, in_name = 0.0, 0
    for query_word in words:
        best = 0.0
        for field_name, field_words in fields.items():
            for word in field_words:
                best = max(best, _FIELD_WEIGHTS[field_name] * _match(query_word, word))
        if best == 0.0:
            return None
        in_name += any(_match(query_word, w) for w in fields["name"])
        total += best
    exact = fold(query.strip()) == fold(preset.name) or slug(query) == preset.slug
    return (not exact, -in_name, -total, len(fields["name"]))


def matching(presets: list[Preset], category: str | None = None, tag: str | None = None) -> list[Preset]:
    """`presets` of `category` (exactly) that carry `tag` (accents and case folded), in order."""
    wanted = None if tag is None else fold(tag.strip())
    return [p for p in presets
            if (category is None or p.category == category) and (wanted is None or wanted in (fold(t) for t in p.tags))]
