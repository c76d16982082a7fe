"""Run under LD_PRELOAD=counter.so: count the heap calls the audio thread's work makes.

Prints one JSON object: for each scenario, the heap calls made while `Engine.process` ran
its blocks (malloc, calloc, realloc, free, aligned), apart from those made inside
onnxruntime's run, which are counted in their own bucket (`onnxruntime_*`) with the number
of runs. Everything is prepared (and warmed up) before counting starts, as `Engine.load`
prepares a preset off the audio thread, and the runtime policy of `timbrel play` is in force
(the cyclic garbage collector, which frees whatever it finds on whichever thread it runs, is off).
"""

from __future__ import annotations

import ctypes
import json
import sys

import numpy as np

from timbrel.engine.numba_cache import configure_numba_cache

configure_numba_cache()

from timbrel.engine.plugin_api import Effect  # noqa: E402
from timbrel.engine.realtime.events import CHANNEL_PRESSURE, CONTROL_CHANGE, NOTE_OFF, NOTE_ON, PITCH_BEND  # noqa: E402
from timbrel.engine.realtime.host import Engine  # noqa: E402
from timbrel.plugin.chain import Chain  # noqa: E402
from timbrel.plugin.effects import create_effect  # noqa: E402
from timbrel.plugin.ensemble import Ensemble, Part  # noqa: E402
from timbrel.plugin.instrument import MidiInstrument  # noqa: E402
from timbrel.plugin.model import load_model  # noqa: E402
from timbrel.plugin.transfer import TimbreTransfer  # noqa: E402
from timbrel.presets import default_model  # noqa: E402
from timbrel.presets.build import load_preset  # noqa: E402
from timbrel.runtime_policy import RealtimePolicy  # noqa: E402

SR, BLOCK = 48000, 128
LV2_EFFECTS = ("http://gareus.org/oss/lv2/fil4#stereo", "http://gareus.org/oss/lv2/darc#stereo", "urn:dragonfly:plate",
               "http://gareus.org/oss/lv2/fil4#mono", "http://gareus.org/oss/lv2/dpl#stereo")
"""Real LV2 plugins (Debian's x42-plugins and dragonfly-reverb-lv2): stereo, mono run per channel,
one with atom ports and the worker, one with a latency port."""


class Allocating(Effect):
    """An effect that breaks the rule (a new array every block): the control that shows the count works."""

    name = "allocating"

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        out *= np.ones(out.shape[1], dtype=np.float32)

KINDS = ("malloc", "calloc", "realloc", "free", "aligned")
counter = ctypes.CDLL(sys.argv[1])
counts = (ctypes.c_long * (2 * len(KINDS)))()


def counted(work) -> dict:
    counter.timbrel_alloc_start()
    work()
    counter.timbrel_alloc_stop(counts)
    return dict(zip(KINDS, counts[:len(KINDS)])) | {f"onnxruntime_{k}": n for k, n in zip(KINDS, counts[len(KINDS):])}


def runners_of(plugin) -> list:
    """The onnxruntime runners of `plugin`: an instrument's, a chain's instrument's, or every
    model's of an ensemble and its stacks."""
    if isinstance(plugin, Ensemble):
        return [*plugin.voices.runners, *plugin.voices.stacks]
    return [getattr(plugin, "instrument", plugin).synth.runner]


def measured_apart(plugin) -> None:
    """Charge what the onnxruntime sessions of `plugin` (prepared) allocate while running to the
    second bucket."""
    for runner in runners_of(plugin):
        session = runner.session
        if getattr(session, "apart", False):
            continue
        run = session.run_with_iobinding

        def run_apart(*args, run=run, **kwargs):
            counter.timbrel_alloc_bucket(1)
            try:
                return run(*args, **kwargs)
            finally:
                counter.timbrel_alloc_bucket(0)

        session.run_with_iobinding = run_apart
        session.apart = True


def runs_of(plugin) -> int:
    return sum(runner.runs for runner in runners_of(plugin))


def blocks(engine: Engine, count: int, events: dict[int, list[int]], voice: np.ndarray | None = None):
    out = np.zeros((BLOCK, 2), dtype=np.float32)

    def run():
        for i in range(count):
            for packed in events.get(i, ()):
                engine.events.push(packed)
            engine.process(None if voice is None else voice[i * BLOCK:(i + 1) * BLOCK], out)
    return run


def scenario(engine: Engine, plugin, count: int, events: dict[int, list[int]], voice=None) -> dict:
    blocks(engine, 200, {}, voice)()  # settle: the first blocks after a load
    before = runs_of(engine.plugin)
    found = counted(blocks(engine, count, events, voice))
    return found | {"onnxruntime_runs": runs_of(engine.plugin) - before, "blocks": count}


def main() -> None:
    model = load_model(default_model())
    results = {}
    engine = Engine(SR, 2048)

    plain = MidiInstrument(model, voices=16)
    engine.load(plain)
    measured_apart(plain)
    notes = {i * 20: [NOTE_ON | (48 + 3 * i) << 8 | 90 << 16] for i in range(8)}
    notes.update({200 + i * 20: [NOTE_OFF | (48 + 3 * i) << 8] for i in range(8)})
    results["notes"] = scenario(engine, plain, 400, notes)

    mpe = MidiInstrument(model, voices=16)
    engine.load(mpe)
    measured_apart(mpe)
    configure = [CONTROL_CHANGE | n << 8 | v << 16 for n, v in ((101, 0), (100, 6), (6, 15))]
    expressive = {0: configure + [NOTE_ON | ch | (55 + 4 * ch) << 8 | 90 << 16 for ch in range(1, 5)]}
    expressive.update({40 + i * 10: [PITCH_BEND | 2 | i << 8 | 66 << 16, CHANNEL_PRESSURE | 3 | (10 * i) << 8,
                                     CONTROL_CHANGE | 4 | 74 << 8 | (8 * i) << 16] for i in range(12)})
    expressive[300] = [NOTE_OFF | ch | (55 + 4 * ch) << 8 for ch in range(1, 5)]
    results["mpe"] = scenario(engine, mpe, 400, expressive)

    stealing = MidiInstrument(model, voices=4)
    engine.load(stealing)
    measured_apart(stealing)
    results["stealing"] = scenario(engine, stealing, 300, {i * 10: [NOTE_ON | (40 + i) << 8 | 100 << 16]
                                                          for i in range(20)})

    chain = load_preset("Sax Lead")
    engine.load(chain)
    measured_apart(chain)
    played = {0: [CONTROL_CHANGE | 64 << 8 | 127 << 16, *(NOTE_ON | n << 8 | 80 << 16 for n in (50, 54, 57, 61))],
              150: [CONTROL_CHANGE | 64 << 8], 160: [CONTROL_CHANGE | 123 << 8]}
    results["full_chain"] = scenario(engine, chain, 400, played)

    for counting in (False, True):
        # The first switch of a process fills one of numpy's internal caches (one persistent
        # allocation, never freed); the second shows what every switch costs from then on.
        outgoing, incoming = chain, load_preset("Cello")
        engine.events.push(NOTE_ON | 48 << 8 | 90 << 16)
        blocks(engine, 5, {})()
        engine.load(incoming)  # prepared here, as the loader thread does; swapped on the next block
        measured_apart(incoming)
        before = runs_of(outgoing) + runs_of(incoming)
        found = counted(blocks(engine, 60, {}))
        if counting:
            results["preset_switch"] = found | {"onnxruntime_runs": runs_of(outgoing) + runs_of(incoming) - before,
                                                "blocks": 60}
        chain = load_preset("Sax Lead")
        engine.load(chain)
        measured_apart(chain)
        blocks(engine, 60, {})()

    transfer = TimbreTransfer(model)
    engine.load(transfer)
    measured_apart(transfer)
    t = np.arange(600 * BLOCK) / SR
    voice = (0.3 * np.sin(2 * np.pi * 220 * t) * np.clip(t / 0.2, 0, 1)).astype(np.float32)
    results["transfer"] = scenario(engine, transfer, 400, {}, voice[200 * BLOCK:])

    ensemble = Ensemble([Part(load_preset("Violin", voices=8), midi_channel=1),
                         Part(load_preset("Cello", voices=8), midi_channel=2, key_high=59, reverb_send=0.3),
                         Part(load_preset("Flute", voices=8), midi_channel=2, key_low=60, pan=0.5)],
                        reverb=None, delay=None)
    engine.load(ensemble)
    measured_apart(ensemble)
    for counting in (False, True):
        # As for presets, the process's first part switch fills numpy's cache; the second is counted.
        engine.events.push(NOTE_ON | 1 | 48 << 8 | 90 << 16)
        blocks(engine, 5, {})()
        ensemble.switch_part(1, load_preset("Bassoon" if counting else "Tuba", voices=8))
        measured_apart(ensemble)
        before = runs_of(ensemble)
        played = {0: [NOTE_ON | 67 << 8 | 90 << 16, NOTE_ON | 1 | 72 << 8 | 80 << 16, NOTE_ON | 1 | 43 << 8 | 80 << 16],
                  40: [CONTROL_CHANGE | 1 | 1 << 8 | 90 << 16, PITCH_BEND | 70 << 16],
                  200: [NOTE_OFF | 67 << 8, NOTE_OFF | 1 | 72 << 8, NOTE_OFF | 1 | 43 << 8, NOTE_OFF | 1 | 48 << 8]}
        found = counted(blocks(engine, 300, played))
        if counting:
            results["ensemble"] = found | {"onnxruntime_runs": runs_of(ensemble) - before, "blocks": 300}

    lv2 = Chain(MidiInstrument(model, voices=16), [create_effect(f"lv2:{uri}") for uri in LV2_EFFECTS])
    engine.load(lv2)
    measured_apart(lv2)
    blocks(engine, 200, {})()
    lv2["dragonfly-plate-reverb"].send_atom("urn:distrho:KeyValueState", b"key\0value\0")  # a worker job
    before = runs_of(lv2)
    results["lv2_chain"] = counted(blocks(engine, 400, notes)) | {"onnxruntime_runs": runs_of(lv2) - before,
                                                                  "blocks": 400, "worker_jobs": lv2[2].worker_jobs}

    # Sung notes with gaps, a step every 0.3 s: onsets (four model steps), note changes and
    # note offs, with MIDI out as MPE, so the follower writes its whole repertoire to the outbox.
    singer = TimbreTransfer(model)
    singer.params.set("mpe", 1)
    engine.load(singer)
    measured_apart(singer)
    t = np.arange(600 * BLOCK) / SR
    steps = np.floor(t / 0.3) % 5
    phase = 2 * np.pi * np.cumsum(220 * 2 ** (2 * steps / 12)) / SR
    notes = (0.3 * sum(np.sin(k * phase) / k for k in range(1, 6)) * (t % 0.3 < 0.22)).astype(np.float32)
    written = int(singer.outbox.counts[0])
    results["transfer_midi_out"] = scenario(engine, singer, 400, {}, notes)
    results["transfer_midi_out"]["midi_messages"] = int(singer.outbox.counts[0]) - written

    control = Chain(MidiInstrument(model, voices=4), [Allocating()])
    engine.load(control)
    measured_apart(control)
    results["control"] = scenario(engine, None, 50, {0: [NOTE_ON | 60 << 8 | 90 << 16]})
    print(json.dumps(results))


if __name__ == "__main__":
    with RealtimePolicy():  # as `timbrel play` runs: no cyclic collection on the audio thread
        main()
