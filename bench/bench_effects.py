"""Effect cost per block at 48 kHz, block 128, and a full chain against its budget.

    python -m bench.bench_effects [--blocks N]

Each built-in effect (and each installed third-party one) processes stereo noise in place,
block after block, exactly as the chain calls it; the table gives the median and p99 time
per block and the mean share of one core. Where Spotify's pedalboard is installed, its
nearest equivalent is timed the same way (`process(block, reset=False)` per block), for a
ratio measured in the same run. Then the full chain (the instrument with 16 voices, then
EQ, compressor, delay, chorus and the learned reverb) runs through `Engine.process`, and
its mean share of a core is compared with the 35 % budget. Writes bench/results/effects.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.bench_engine import chord
from bench.report import report
from timbrel.engine.realtime.events import NOTE_ON
from timbrel.engine.realtime.host import Engine
from timbrel.plugin.chain import Chain
from timbrel.plugin.discovery import discover
from timbrel.plugin.effects import BUILTIN, create_effect, effect_class
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import load_model
from timbrel.presets import default_model

SR, BLOCK = 48000, 128
BUDGET_US = BLOCK / SR * 1e6
FULL_CHAIN = ("eq", "compressor", "delay", "chorus", "reverb")
SETTINGS = {
    "eq": {"low_shelf_db": 3.0, "peak1_db": -4.0, "peak2_db": 5.0, "high_shelf_db": -3.0, "low_cut_hz": 60.0},
    "compressor": {"threshold_db": -24.0, "ratio": 4.0},
    "delay": {"time_ms": 330.0, "feedback": 0.4, "mix": 0.3},
    "chorus": {"mix": 0.5},
    "reverb": {"mix": 0.3},
}


def pedalboard_twins() -> dict:
    """pedalboard's nearest equivalent of each built-in effect, when pedalboard is installed."""
    try:
        import pedalboard as pb
    except ImportError:
        return {}
    return {
        "gain": lambda: pb.Gain(gain_db=-3.0),
        "eq": lambda: pb.Pedalboard([pb.HighpassFilter(60.0), pb.LowShelfFilter(200.0, 3.0), pb.PeakFilter(800.0, -4.0),
                                     pb.PeakFilter(3000.0, 5.0), pb.HighShelfFilter(8000.0, -3.0)]),
        "compressor": lambda: pb.Compressor(threshold_db=-24.0, ratio=4.0),
        "limiter": lambda: pb.Limiter(threshold_db=-1.0),
        "delay": lambda: pb.Delay(delay_seconds=0.33, feedback=0.4, mix=0.3),
        "chorus": lambda: pb.Chorus(mix=0.5),
        "reverb": lambda: pb.Reverb(wet_level=0.3),
    }


def time_blocks(step, blocks: int) -> np.ndarray:
    """Per-call time (µs) of `step()` over `blocks` calls, after 200 warm-up calls."""
    for _ in range(200):
        step()
    times = np.empty(blocks)
    for i in range(blocks):
        t0 = time.perf_counter_ns()
        step()
        times[i] = (time.perf_counter_ns() - t0) / 1e3
    return times


def effect_step(name: str, settings: dict | None, noise: np.ndarray):
    """The effect `name` with `settings`, prepared for 128-sample blocks at 48 kHz, and a call that
    runs it on the next block of stereo `noise` `[2, samples]` as the chain does (in place)."""
    effect = create_effect(name, settings, **({"model": default_model()} if name == "reverb" else {}))
    effect.prepare(SR, BLOCK)
    bus = np.empty((2, BLOCK), dtype=np.float32)
    silence = np.zeros(BLOCK, dtype=np.float32)
    none = np.zeros(0, dtype=np.int32)
    position = [0]

    def step() -> None:
        i = position[0] = (position[0] + BLOCK) % (noise.shape[1] - BLOCK)
        bus[:] = noise[:, i : i + BLOCK]
        effect.process(silence, bus, none)

    return effect, step


def effect_row(name: str, blocks: int, noise: np.ndarray, twin=None) -> dict:
    effect, step = effect_step(name, SETTINGS.get(name), noise)
    times = time_blocks(step, blocks)
    row = {"effect": name, "median_us": float(np.median(times)), "p99_us": float(np.percentile(times, 99)),
           "core_share_pct": 100 * float(np.mean(times)) / BUDGET_US, "latency_samples": effect.latency_samples}
    if twin is not None:
        plugin = twin()
        position = [0]

        def twin_step() -> None:
            i = position[0] = (position[0] + BLOCK) % (noise.shape[1] - BLOCK)
            plugin.process(noise[:, i : i + BLOCK], SR, buffer_size=BLOCK, reset=False)

        twin_times = time_blocks(twin_step, blocks)
        row["pedalboard_median_us"] = float(np.median(twin_times))
        row["pedalboard_over_timbrel"] = row["pedalboard_median_us"] / row["median_us"]
    return row


def full_chain(model, blocks: int, effects: tuple[str, ...]) -> np.ndarray:
    """Per-block time (µs) of 16 held voices through `effects` in `Engine.process`."""
    engine = Engine(SR, BLOCK)
    engine.load(Chain(MidiInstrument(model, voices=16), [create_effect(n, SETTINGS.get(n), **({"model": model} if n == "reverb" else {})) for n in effects]))
    for note in chord(16):
        engine.events.push(NOTE_ON | note << 8 | 100 << 16)
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    times = time_blocks(lambda: engine.process(None, out), blocks)
    assert engine.plugin.active_voices == 16 and engine.status().faults == ()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    noise = (0.2 * rng.standard_normal((2, SR * 4))).astype(np.float32)
    twins = pedalboard_twins()
    names = list(BUILTIN) + [i.name for i in discover() if i.kind == "effect" and not i.error]
    rows = [effect_row(name, args.blocks, noise, twins.get(name)) for name in names]
    model = load_model(default_model())
    instrument = full_chain(model, args.blocks, ())
    chain = full_chain(model, args.blocks, FULL_CHAIN)
    for label, times in (("instrument alone, 16 voices", instrument), ("full chain, 16 voices", chain)):
        rows.append({"effect": label, "median_us": float(np.median(times)), "p99_us": float(np.percentile(times, 99)),
                     "core_share_pct": 100 * float(np.mean(times)) / BUDGET_US})
    report("effects", rows, sample_rate=SR, block=BLOCK, full_chain=list(FULL_CHAIN),
           effect_classes={n: f"{effect_class(n).__module__}.{effect_class(n).__name__}" for n in names},
           targets={"full_chain_core_share_pct": 35})


if __name__ == "__main__":
    main()
