"""The presets the user starred, kept in `favourites.json` in the user's timbrel folder."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from timbrel.engine.atomic import write_text
from timbrel.engine.errors import TimbrelError


class Favourites:
    """A set of preset names stored as a sorted JSON list at `path`, written atomically.

    A missing file is an empty set; an unreadable one too, and `problem` names it and the
    fault (the next change replaces it).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.problem = ""
        self._lock = threading.Lock()

    def names(self) -> set[str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as err:
            self.problem = f"{self.path}: unreadable favourites ({err}); starting afresh"
            return set()
        if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
            self.problem = f"{self.path}: favourites must be a JSON list of preset names; starting afresh"
            return set()
        return set(data)

    def mark(self, name: str, favourite: bool) -> set[str]:
        """Add (`favourite`) or remove `name`; returns the new set."""
        if not isinstance(name, str) or not name.strip():
            raise TimbrelError("a favourite needs a preset name")
        with self._lock:
            names = self.names()
            (names.add if favourite else names.discard)(name)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_text(self.path, json.dumps(sorted(names), ensure_ascii=False, indent=1) + "\n")
            except OSError as err:
                raise TimbrelError(f"{self.path}: cannot save favourites ({err.strerror or err})") from None
            return names
