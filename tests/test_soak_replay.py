"""The offline soak (`python -m bench.soak --offline`) takes each block's least CPU time over
runs of the same playing as the engine's own cost. That holds only if the engine does the same
work each run: these tests check that a fresh engine renders the same playing bit for bit. The
live soak sorts its late blocks by what charged them (`charges`)."""

from __future__ import annotations

import numpy as np

from bench.ensembles import bench_multi
from bench.soak import BLOCK, SR, charges, phrases, replay
from timbrel.engine.realtime.host import Engine
from timbrel.engine.realtime.stages import COLUMNS, CPU, WALL
from timbrel.presets.multi import build_ensemble

SECONDS = 3.0


def rendered(seed: int) -> np.ndarray:
    engine = Engine(SR, 2048)
    engine.load(build_ensemble(bench_multi(2)))
    audio = np.zeros((int(SECONDS * SR / BLOCK) * BLOCK, 2), dtype=np.float32)
    cpu = replay(engine, SECONDS, seed, channels=2, audio=audio)
    assert cpu.shape == (audio.shape[0] // BLOCK,) and (cpu > 0).all()
    return audio


def test_the_same_playing_renders_bit_for_bit_the_same_on_a_fresh_engine():
    first, second = rendered(seed=4), rendered(seed=4)
    assert np.abs(first).max() > 1e-3
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, rendered(seed=5))


def test_the_playing_spreads_over_the_channels_asked_for_and_lets_notes_go():
    playing = phrases(seed=0, channels=3)
    messages = [m for _ in range(400) for m in next(playing)[0]]
    assert {m[0] & 0x0F for m in messages} == {0, 1, 2}
    assert {m[0] & 0xF0 for m in messages} == {0x80, 0x90, 0xB0, 0xE0}


def test_late_blocks_are_sorted_by_what_charged_them():
    usual = np.zeros(len(COLUMNS))
    usual[COLUMNS.index("model")], usual[COLUMNS.index("synth")], usual[CPU] = 300e3, 200e3, 600e3

    def block(model_us: float, synth_us: float, cpu_us: float, wall_us: float) -> np.ndarray:
        row = np.zeros(len(COLUMNS))
        row[COLUMNS.index("model")], row[COLUMNS.index("synth")] = model_us * 1e3, synth_us * 1e3
        row[CPU], row[WALL] = cpu_us * 1e3, wall_us * 1e3
        return row

    rows = np.array([
        block(300, 200, 2_800, 600),      # more CPU than time passed: charged from outside
        block(3_200, 200, 3_500, 3_500),  # one stage 2.9 ms over its usual cost, the rest as usual
        block(1_500, 1_100, 2_800, 2_800),  # every stage slow at once: not explained
        block(2_000, 700, 2_800, 2_800),  # one stage 6.7x its usual, the rest slow too: not explained
        block(300, 200, 600, 600),        # on time: not counted
    ])
    assert charges(rows, usual) == {"late_cpu_over_wall": 1, "late_one_stage": 1}
    assert charges(rows[2:], usual) == {"late_cpu_over_wall": 0, "late_one_stage": 0}
    assert charges(rows[:0], usual) == {"late_cpu_over_wall": 0, "late_one_stage": 0}
