"""The README's Python examples run, in order, in one namespace: they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_python_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    audio, stereo, wet, out = (namespace[k] for k in ("audio", "stereo", "wet", "out"))
    assert audio.ndim == 2 and audio.shape[1] == 2 and np.abs(audio).max() > 0.01
    assert stereo.shape == (2, 48000) and wet.shape == (2, 48000) and np.all(np.isfinite(wet))
    assert np.all(np.isfinite(out)) and out.size == 48000
    assert (tmp_path / "tune.mid").is_file()


def test_the_facade_names_what_it_exports():
    import timbrel

    for name in timbrel.__all__:
        assert getattr(timbrel, name) is not None, name
    assert set(timbrel.__all__) <= set(dir(timbrel))
    chain = timbrel.load_preset("cello", voices=4)
    assert isinstance(chain, timbrel.Chain) and isinstance(chain.instrument, timbrel.MidiInstrument)
    assert isinstance(timbrel.load_preset("Voice to Flute").instrument, timbrel.TimbreTransfer)
