"""Loaded models kept for reuse, so that switching back to a preset does not load its model again.

Variations of one instrument share one loaded model (checked file, metadata, reverb); each
player opens its own onnxruntime session from it (`TimbreModel.open_session`). The cache is bounded: past
`capacity` models the least recently used is dropped (a chain still playing it keeps it
alive until that chain is retired, off the audio thread).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from timbrel.plugin.model import TimbreModel, load_model

CAPACITY = 32
"""More than the factory's 13 models, so cycling through every preset never reloads one."""


class ModelCache:
    """`get(path, sha256)`: the model at `path`, loaded once per file and content."""

    def __init__(self, capacity: int = CAPACITY):
        if capacity < 1:
            raise ValueError("the model cache holds at least one model")
        self.capacity = capacity
        self._models: OrderedDict[tuple[str, str], TimbreModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str | Path, sha256: str) -> TimbreModel:
        """The model in file `path` whose content hashes to `sha256` (64 hex digits)."""
        key = (str(Path(path).resolve()), sha256)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = load_model(path)
        with self._lock:
            self._models[key] = model
            self._models.move_to_end(key)
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
        return model

    def clear(self) -> None:
        """Forget every model (a benchmark timing loads afresh, say)."""
        with self._lock:
            self._models.clear()
