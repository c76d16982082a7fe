"""Ensembles: rendering a General MIDI quartet, and what N parts of 8 voices cost per block.

    python -m bench.bench_ensemble [--seconds 60] [--repeats 3]

1. `timbrel render`'s path for a General MIDI file: a four-part song (violin, flute, cello,
   trumpet on channels 1 to 4, a line of overlapping notes each, `--seconds` long), its
   ensemble built from the GM map and rendered through `Engine.process` in 128-sample
   blocks. Reports the speed against real time, with and without the set-up (building the
   parts and preparing them: onnxruntime sessions, warm-up).
2. `Engine.process` in a loop, the audio thread's own CPU time per 128-sample block, for
   4 and 8 parts of 8 held notes each (`bench.ensembles`), next to the same voices played
   as 4 or 8 separate presets, each in its own engine, their costs added: what playing
   them as one ensemble (one synth call, one onnxruntime call for the stacked models) saves. A loop
   figure: the live process's own is `bench.bench_process` (scenarios 4x8, 8x8).

Medians of `--repeats` runs. Writes bench/results/ensemble.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import mido
import numpy as np

from bench.ensembles import INSTRUMENTS, RANGES, bench_multi, chord
from bench.report import report
from timbrel.engine.realtime.host import Engine
from timbrel.engine.render import TAIL_S, midi_events
from timbrel.presets.build import load_preset
from timbrel.presets.multi import build_ensemble
from timbrel.presets.song import song_multi

SR, BLOCK = 48000, 128
QUARTET = ((0, 40), (1, 73), (2, 42), (3, 56))
"""Channel and GM program: violin, flute, cello, trumpet."""


def write_quartet(path: Path, seconds: float, seed: int = 0) -> Path:
    """A four-part song: each channel walks its instrument's middle range in notes of 0.25 to
    1 s, each overlapping the next by a little (legato lines), for `seconds`."""
    rng = random.Random(seed)
    song = mido.MidiFile(type=1, ticks_per_beat=480)
    for (channel, program), name in zip(QUARTET, ("violin", "flute", "cello", "trumpet")):
        track = mido.MidiTrack()
        song.tracks.append(track)
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
        events, now, note = [], 0.0, RANGES[name]
        while now < seconds:
            length = rng.choice((0.25, 0.5, 0.5, 1.0))
            note = min(max(note + rng.choice((-4, -2, -1, 1, 2, 3, 5)), RANGES[name] - 9), RANGES[name] + 9)
            events.append((now, mido.Message("note_on", channel=channel, note=note, velocity=rng.randrange(60, 110))))
            events.append((now + length + 0.04, mido.Message("note_off", channel=channel, note=note, velocity=0)))
            now += length
        events.sort(key=lambda e: e[0])
        last = 0.0
        for at, message in events:
            track.append(message.copy(time=round((at - last) * 960)))  # 120 bpm: 960 ticks a second
            last = at
    song.save(str(path))
    return path


def render_speed(seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        song = write_quartet(Path(folder) / "quartet.mid", seconds)
        events = midi_events(song)
        length = events[-1][0] + TAIL_S
        wall, cpu = time.perf_counter(), time.process_time()
        multi, _ = song_multi(song)
        ensemble = build_ensemble(multi)
        engine = Engine(SR, BLOCK)
        engine.load(ensemble)
        setup_wall, setup_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        total = int(np.ceil(length * SR))
        out = np.zeros((total, 2), dtype=np.float32)
        i = 0
        for start in range(0, total, BLOCK):
            stop = min(total, start + BLOCK)
            while i < len(events) and events[i][0] * SR < stop:
                engine.events.push(events[i][1])
                i += 1
            engine.process(None, out[start:stop])
        play_wall, play_cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert np.abs(out).max() > 0.01
    return {"song_s": round(length, 1), "setup_s": setup_wall, "setup_cpu_s": setup_cpu, "render_s": play_wall,
            "render_cpu_s": play_cpu, "x_real_time": length / (setup_wall + play_wall),
            "x_real_time_render_only": length / play_wall}


def block_cpu_us(engine: Engine, blocks: int = 1000) -> float:
    """The engine's own CPU time per block (µs), median over 10 stretches of `blocks` / 10."""
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    for _ in range(100):
        engine.process(None, out)
    stretches = []
    for _ in range(10):
        began = time.thread_time_ns()
        for _ in range(blocks // 10):
            engine.process(None, out)
        stretches.append((time.thread_time_ns() - began) / (blocks // 10) / 1e3)
    return statistics.median(stretches)


def ensemble_cost(parts: int) -> float:
    engine = Engine(SR, 2048)
    engine.load(build_ensemble(bench_multi(parts)))
    for part in range(parts):
        for key in chord(part, 8):
            engine.events.push(0x90 | part | key << 8 | 80 << 16)
    cost = block_cpu_us(engine)
    assert engine.status().voices == 8 * parts, engine.status().voices
    return cost


def separate_cost(parts: int) -> float:
    total = 0.0
    for part, name in enumerate(INSTRUMENTS[:parts]):
        engine = Engine(SR, 2048)
        engine.load(load_preset(name, voices=8))
        for key in chord(part, 8):
            engine.events.push(0x90 | key << 8 | 80 << 16)
        total += block_cpu_us(engine)
        assert engine.status().voices == 8
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    budget_us = 1e6 * BLOCK / SR
    rows = []
    renders = [render_speed(args.seconds) for _ in range(args.repeats)]
    middle = sorted(renders, key=lambda r: r["x_real_time"])[len(renders) // 2]
    rows.append({"what": "render GM quartet", **{k: round(v, 3) if isinstance(v, float) else v for k, v in middle.items()}})
    for parts in (4, 8):
        fused = statistics.median(ensemble_cost(parts) for _ in range(args.repeats))
        apart = statistics.median(separate_cost(parts) for _ in range(args.repeats))
        rows.append({"what": f"{parts} parts x 8 voices", "ensemble_block_cpu_us": round(fused, 1),
                     "ensemble_pct_of_core": round(100 * fused / budget_us, 1),
                     "separate_presets_block_cpu_us": round(apart, 1),
                     "separate_pct_of_core": round(100 * apart / budget_us, 1), "ratio": round(apart / fused, 2)})
    report("ensemble", rows, sample_rate=SR, block=BLOCK, repeats=args.repeats,
           note="render: wall clock, with and without set-up; blocks: the audio thread's CPU time per 128-sample "
                "block in a loop (median of 10 stretches, median of repeats), % of one core")


if __name__ == "__main__":
    main()
