"""The ensembles the benchmarks play: N parts of 8 voices, one per MIDI channel."""

from __future__ import annotations

from timbrel.presets.multi import Multi, PartSpec

INSTRUMENTS = ("violin", "flute", "cello", "trumpet", "oboe", "clarinet", "french-horn", "contrabass")
RANGES = {"violin": 67, "flute": 74, "cello": 48, "trumpet": 62, "oboe": 69, "clarinet": 60, "french-horn": 53,
          "contrabass": 36}
"""A note in the middle of each instrument's range: the benchmarks' chords are built up from it."""


def bench_multi(parts: int, voices: int = 8) -> Multi:
    """`parts` (1 to 8) of the instruments above, part k on MIDI channel k + 1, each `voices` voices."""
    return Multi(name=f"bench {parts}x{voices}", parts=[
        PartSpec(preset=name, voices=voices, settings={"midi_channel": float(k + 1), "volume_db": -12.0})
        for k, name in enumerate(INSTRUMENTS[:parts])])


def chord(part: int, notes: int) -> list[int]:
    """`notes` distinct keys for part `part`, around its instrument's middle."""
    base = RANGES[INSTRUMENTS[part]]
    return [base - notes + 2 * i for i in range(notes)]
