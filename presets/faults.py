"""How a fault in a preset's contents is described: one line, values shown short, a suggestion
for a near miss. Shared by the parser and the `--set` grammar."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PresetFault(Exception):
    """A fault in a preset's contents, before the file's name is put in front of it."""


def suggestion(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def kind_of(value: object) -> str:
    if isinstance(value, bool):
        return f"true/false ({str(value).lower()})"
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a table"}
    for cls, word in names.items():
        if isinstance(value, cls):
            return f"{word} ({shown(value)})" if cls in (str, int, float) else word
    return type(value).__name__


def shown(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(message: str) -> str:
    return " ".join(message.splitlines())
