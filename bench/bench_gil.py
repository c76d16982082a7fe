"""How long the loader's work keeps other threads from the GIL: a probe thread beside it.

    python -m bench.bench_gil [--repeats 40]

The audio callback needs the GIL at the start of every block. A thread holding it in one long
C call (Python code itself hands it over every switch interval, 0.2 ms while playing) makes
the callback begin late by as much. A probe thread here sleeps 0.2 ms at a time and records
how much longer each sleep took; meanwhile the main thread repeats one piece of a preset
switch's work, `--repeats` times each:

- `open session`: an onnxruntime session of the violin model (what each switch did before
  players handed their synths back);
- `build synth`: a `ModelSynth` of 16 voices, session included (the same);
- `take synth`: `take_synth` when a player has handed one back (what a switch does now);
- `build stack`: a `StackedRunner` of the 8 instruments of `bench.ensembles` for 64 voices,
  what an ensemble part switched to a model the ensemble has not played makes (after its
  `ModelRunner`, an `open session` and its bindings);
- `load preset`: a whole `Session.load` of a MIDI preset whose model has played before,
  cycling through the factory presets, with the engine driven by hand between loads.

Reports, per piece, the median time it took and the probe's longest and 99th-percentile
waits while it ran. Writes bench/results/gil.json.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from typing import Self

import numpy as np

from bench.ensembles import INSTRUMENTS
from bench.report import report
from timbrel.plugin.model import load_model, session_options
from timbrel.plugin.model_synth import SYNTHS, ModelSynth, take_synth
from timbrel.plugin.stacked_models import StackedRunner
from timbrel.presets import default_model
from timbrel.presets.build import load_preset
from timbrel.presets.library import Library
from timbrel.runtime_policy import RealtimePolicy
from timbrel.session import Session

PROBE_S = 0.0002
SR, BLOCK = 48000, 128


class Probe:
    """A thread that sleeps `PROBE_S` at a time and keeps how much longer each sleep took (µs)."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="gil-probe")

    def _run(self) -> None:
        while not self._stop:
            began = time.perf_counter()
            time.sleep(PROBE_S)
            self.waits.append((time.perf_counter() - began - PROBE_S) * 1e6)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop = True
        self._thread.join()


def measure(name: str, work, repeats: int) -> dict:
    """Run `work()` `repeats` times beside a probe; the probe's waits and the work's times."""
    took = []
    with Probe() as probe:
        for _ in range(repeats):
            began = time.perf_counter()
            work()
            took.append((time.perf_counter() - began) * 1e3)
            time.sleep(0.005)
    waits = np.array(probe.waits)
    return {"work": name, "repeats": repeats, "median_ms": float(np.median(took)),
            "probe_wait_p99_us": float(np.percentile(waits, 99)), "probe_wait_max_us": float(waits.max()),
            "probe_waits_over_1ms": int((waits > 1000).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    model = load_model(default_model())
    rows = []
    with RealtimePolicy():
        import onnxruntime as ort

        data = model.path.read_bytes()
        rows.append(measure("open session", lambda: ort.InferenceSession(data, sess_options=session_options(),
                                                                          providers=["CPUExecutionProvider"]),
                            args.repeats))
        rows.append(measure("build synth", lambda: ModelSynth(model, 16, SR, 2048), args.repeats))

        def take_and_hand_back() -> None:
            synth = take_synth(model, 16, SR, 2048)
            SYNTHS.give_back(synth.key, synth)

        take_and_hand_back()
        rows.append(measure("take synth", take_and_hand_back, args.repeats))
        stacked = [load_preset(name, voices=1).instrument.model for name in INSTRUMENTS]
        rows.append(measure("build stack", lambda: StackedRunner(stacked, range(len(stacked)), 64), args.repeats))
        session = Session(library=Library(user_dir=tempfile.mkdtemp()), voices=16)
        names = [p.name for p in session.library.list() if p.mode == "midi"]
        out = np.zeros((BLOCK, 2), dtype=np.float32)
        turn = [0]

        def load() -> None:
            session.load(names[turn[0] % len(names)], wait=True)
            turn[0] += 1
            for _ in range(12):  # the swap and its crossfade, so the engine retires the player
                session.engine.process(None, out)

        for _ in range(2 * len(names)):
            load()
        rows.append(measure("load preset", load, args.repeats))
        session.close()
    report("gil", rows, probe_sleep_us=PROBE_S * 1e6,
           note="probe_wait: how much longer than 0.2 ms a probe thread's sleep took while the work ran")


if __name__ == "__main__":
    main()
