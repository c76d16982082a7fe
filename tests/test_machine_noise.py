"""The noise witness that tells a test how many late blocks the machine itself explains."""

from __future__ import annotations

import time

import numpy as np

from bench.cpu_noise import BLOCK_US, NoiseWitness, Witnessed
from tests.conftest import machine_allowance
from timbrel.engine.realtime.stages import COLUMNS, CPU


def engine_rows(cpu_us: list[float]) -> np.ndarray:
    rows = np.zeros((len(cpu_us), len(COLUMNS)), dtype=np.int64)
    rows[:, CPU] = np.asarray(cpu_us) * 1000
    return rows


def test_the_witness_counts_only_charges_beyond_the_engines_slack_scaled_by_cpu_time():
    # The engine's median block uses 600 µs, so a charge must exceed the other ~2067 µs.
    rows = engine_rows([600.0] * 1000)
    seen = Witnessed(wakeups=5000, cpu_s=2.0, work_median_us=400.0, excess_us=(3000.0, 2100.0, 2000.0, 150.0))
    assert BLOCK_US - 600.0 < 2100.0 and BLOCK_US - 600.0 > 2000.0
    # Two charges over the slack in 2 s of the witness's CPU time; the engine ran 0.6 s.
    assert seen.explains(rows) == 2 * 0.6 / 2.0
    assert seen.explains(rows[:0]) == 0.0
    quiet = Witnessed(wakeups=5000, cpu_s=2.0, work_median_us=400.0, excess_us=(150.0,))
    assert quiet.explains(rows) == 0.0
    # The same from the engine's totals, as a soak too long for the stage ring reads them.
    assert seen.late_blocks_explained(engine_cpu_s=6.0, engine_block_us=600.0) == 2 * 6.0 / 2.0
    assert seen.late_blocks_explained(engine_cpu_s=6.0, engine_block_us=2000.0) == 3 * 6.0 / 2.0


def test_the_allowance_takes_the_larger_of_the_long_run_rate_and_what_was_witnessed():
    ten_seconds = 48000 * 10 // 128
    assert machine_allowance(ten_seconds) == 2
    assert machine_allowance(ten_seconds, witnessed=0.2) == 3
    assert machine_allowance(ten_seconds, witnessed=6.5) == 9
    assert machine_allowance(ten_seconds * 60) == 32


def test_the_witness_runs_beside_the_caller_and_reports_its_wakeups():
    with NoiseWitness(work_us=200.0) as witness:
        began = time.monotonic()
        time.sleep(1.0)
        watched_s = time.monotonic() - began
    seen = witness.seen
    # About one wake-up a block period; a loaded machine may delay some, never add any.
    assert 150 < seen.wakeups <= watched_s / (BLOCK_US / 1e6) + 2
    assert 100.0 < seen.work_median_us < 1500.0
    assert 0.5 * seen.wakeups * seen.work_median_us / 1e6 < seen.cpu_s < 4 * seen.wakeups * seen.work_median_us / 1e6
    assert list(seen.excess_us) == sorted(seen.excess_us, reverse=True) and all(x > 100 for x in seen.excess_us)
