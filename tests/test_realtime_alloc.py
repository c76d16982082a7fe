"""No heap allocation on the audio thread, counted the way Neural Amp Modeler's tests count it.

`tests/alloc/counter.c`, built here with the system's C compiler and preloaded into a fresh
Python, wraps malloc, calloc, realloc, free and the aligned allocators, and counts the calls
one thread makes while `Engine.process` runs prepared blocks (`tests/alloc/probe.py`):
notes on and off, an MPE chord with per-note bend, pressure and CC 74, voice stealing, a preset with its full effects chain, live transfer,
live transfer of sung notes writing MIDI out as MPE (notes, bends, CC 11, the RPN announcements), a
preset switch with its crossfade and the replay of held keys (the process's second switch:
its first fills one numpy-internal cache, a single allocation never freed), an ensemble of
three parts (a split and a channel of their own) while one part switches preset, and a chain
of five real LV2 plugins, one of them handed a job for its worker. onnxruntime's own run is
counted apart: it allocates on every call whatever its session options (measured in
BENCHMARKS.md), the one exception to the rule, which only replacing onnxruntime would lift.
A control effect that makes an array per block shows that the count sees allocations.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from timbrel.engine.realtime.stages import MODEL, StageTimes

HERE = Path(__file__).resolve().parent / "alloc"
SCENARIOS = ("notes", "mpe", "stealing", "full_chain", "preset_switch", "transfer", "transfer_midi_out", "ensemble",
             "lv2_chain")
ONNXRUNTIME_MALLOCS_PER_RUN = 512
"""Ceiling on onnxruntime's heap calls per run (about 220 measured with onnxruntime 1.2x),
so that a change making it allocate far more is noticed."""
ONNXRUNTIME_CARRIED = 16
"""How many more blocks onnxruntime may hold at the end of a scenario than at its start. It
keeps a few objects from one run to the next (allocated in one, freed in a later one), and
their number can step up once in a process: by 7 in the first scenario when numba compiled
every kernel in the same process just before (a fresh cache), never again after. A leak per
run would pass this within three runs; the scenarios make hundreds."""


@pytest.fixture(scope="module")
def counts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("no C compiler: the allocation test builds its counter with one (apt-get install gcc libc6-dev)",
                    pytrace=False)
    library = tmp_path_factory.mktemp("alloc") / "counter.so"
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(HERE / "counter.c")], check=True)
    environment = os.environ | {"LD_PRELOAD": str(library)}
    result = subprocess.run([sys.executable, str(HERE / "probe.py"), str(library)], capture_output=True, text=True,
                            env=environment, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_audio_thread_makes_no_heap_call(counts, scenario):
    found = counts[scenario]
    own = {kind: found[kind] for kind in ("malloc", "calloc", "realloc", "free", "aligned")}
    assert own == dict.fromkeys(own, 0), found
    assert found["onnxruntime_runs"] > 0, found
    assert abs(found["onnxruntime_malloc"] - found["onnxruntime_free"]) <= ONNXRUNTIME_CARRIED, found
    assert found["onnxruntime_malloc"] <= ONNXRUNTIME_MALLOCS_PER_RUN * found["onnxruntime_runs"], found


def test_the_lv2_chain_ran_its_worker_job_while_counted(counts):
    assert counts["lv2_chain"]["worker_jobs"] == 1, counts["lv2_chain"]


def test_the_count_sees_an_effect_that_allocates(counts):
    assert counts["control"]["malloc"] >= counts["control"]["blocks"]


def test_the_transfer_midi_out_scenario_writes_midi_while_counted(counts):
    """The MIDI-out scenario is not vacuous: note ons, offs, bends and CC 11 went to the outbox."""
    assert counts["transfer_midi_out"]["midi_messages"] >= 20


def test_the_stage_ring_is_mapped_before_the_audio_thread_writes_it():
    """A zeroed array's pages are mapped by the kernel on first write: a ring made with
    `np.zeros` would take a page fault every 24 blocks on the audio thread until it wrapped."""
    times = StageTimes()
    times.begin()  # the first row, and this test's own first calls, off the count
    times.end(1000)
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(times.ring.shape[0] - 1):
        times.begin()
        times.mark(MODEL)
        times.end(1000)
    assert resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faults == 0
    assert times.ring[1:, MODEL].all()
