"""Soak test: timbrel playing live on a JACK dummy server for minutes, under a stream of MIDI.

    python -m bench.soak [--seconds 600] [--voices 16] [--parts N]

Starts a private `jackd --no-realtime -d dummy -r 48000 -p 128` (asynchronous, as a real
session runs), plays the shipped model with 16 voices through the same objects as
`timbrel play`, and has a separate process send random chords, pitch bends, mod wheel
and sustain pedal into timbrel's virtual MIDI port. Counts, at the end:

- late blocks: blocks whose processing took longer than the block lasts, by the wall
  clock (`late_blocks_wall_clock`, which includes the thread being preempted by other
  processes on this 2-core machine) and by the thread's own CPU time
  (`late_blocks`: the engine's own fault);
- how many late blocks the machine alone explains, from a `bench.cpu_noise.NoiseWitness`
  running beside the soak;
- stream xruns: blocks PortAudio flagged (any cause, including the dummy driver's timer
  oversleeping on a shared, non-real-time machine), next to the xruns jackd logged.

With `--parts N` it plays an ensemble instead (`bench.ensembles`: N parts of 8 voices on
channels 1 to N, each preset with its effects), the sender spreading its messages over
those channels. Writes bench/results/soak.json (soak_ensemble.json with `--parts`).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

import numpy as np

from bench.cpu_noise import NoiseWitness
from bench.ensembles import bench_multi
from bench.jack import dummy_server
from bench.report import report
from timbrel.engine.io.audio import AudioStream
from timbrel.engine.io.midi import MidiInput
from timbrel.engine.realtime.host import Engine
from timbrel.engine.realtime.stages import CPU, TIMES, breakdown
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import load_model
from timbrel.presets import default_model
from timbrel.presets.multi import build_ensemble
from timbrel.runtime_policy import RealtimePolicy

SR, BLOCK = 48000, 128


def sender(server: str, seconds: float, seed: int, channels: int = 1) -> None:
    """Child process: random chords, bends, mod wheel and pedal into `timbrel:timbrel`, each
    message on one of the first `channels` channels."""
    os.environ["JACK_DEFAULT_SERVER"] = server
    import rtmidi

    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="soak")
    out.open_virtual_port("out")
    time.sleep(0.5)
    subprocess.run(["jack_connect", "soak:out", "timbrel:timbrel"], check=False)
    rng = random.Random(seed)
    held: list[int] = []
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        channel = rng.randrange(channels)
        choice = rng.random()
        if choice < 0.35 or not held:
            root = rng.randrange(40, 76)
            for note in (root, root + rng.choice((3, 4)), root + 7, root + rng.choice((10, 11, 12))):
                out.send_message([0x90 | channel, note, rng.randrange(30, 127)])
                held.append(note)
                sent += 1
        elif choice < 0.6:
            for note in held[: rng.randrange(1, len(held) + 1)]:
                out.send_message([0x80 | channel, note, 0])
                held.remove(note)
                sent += 1
        elif choice < 0.75:
            value = rng.randrange(0, 16384)
            out.send_message([0xE0 | channel, value & 0x7F, value >> 7])
            sent += 1
        elif choice < 0.85:
            out.send_message([0xB0 | channel, 1, rng.randrange(0, 128)])
            sent += 1
        else:
            out.send_message([0xB0 | channel, 64, rng.choice((0, 127))])
            sent += 1
        if len(held) > 24:
            for note in held:
                for c in range(channels):
                    out.send_message([0x80 | c, note, 0])
            held.clear()
        time.sleep(rng.uniform(0.02, 0.25))
    out.send_message([0xB0, 123, 0])
    print(sent, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--voices", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", type=int, default=0, help="play an ensemble of this many parts of 8 voices")
    parser.add_argument("--send", nargs=4, metavar=("SERVER", "SECONDS", "SEED", "CHANNELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        sender(args.send[0], float(args.send[1]), int(args.send[2]), int(args.send[3]))
        return
    with dummy_server("soak", SR, BLOCK) as server:
        engine = Engine(SR, 2048)
        if args.parts:
            engine.load(build_ensemble(bench_multi(args.parts)))
        else:
            engine.load(MidiInstrument(load_model(default_model()), voices=args.voices))
        midi = MidiInput(engine.events, ports=[], backend="jack")
        stream = AudioStream(engine.process, SR, BLOCK)
        policy = RealtimePolicy()
        policy.enter()  # as `timbrel play` plays
        stream.start()
        time.sleep(1.0)
        engine.reset_meters()
        TIMES.clear()
        server_xruns_before = server.xruns()
        stream_xruns_before = stream.xruns
        child = subprocess.Popen([sys.executable, "-m", "bench.soak", "--send", server.name, str(args.seconds), str(args.seed),
                                  str(max(args.parts, 1))],
                                 stdout=subprocess.PIPE, text=True)
        most_voices = 0
        began = time.monotonic()
        with NoiseWitness() as witness:
            while child.poll() is None:
                time.sleep(0.2)
                most_voices = max(most_voices, engine.status().voices)
        elapsed = time.monotonic() - began
        sent = int(child.stdout.read().strip() or 0)
        status = engine.status()
        block_cpu_median_us = float(np.median(TIMES.snapshot()[:, CPU])) / 1e3
        stats = stream.stats()
        stream.stop()
        stream.close()
        midi.stop()
        policy.leave()
        server_xruns = server.xruns() - server_xruns_before
    row = {
        "seconds": round(elapsed, 1),
        "blocks": status.blocks,
        "midi_messages": sent,
        "refused_or_dropped": engine.events.refused + engine.events.dropped,
        "most_voices": most_voices,
        "late_blocks_wall_clock": status.late_blocks_wall_clock,
        "late_blocks": status.late_blocks,
        "engine_errors": status.errors,
        "stream_xruns": stats.xruns - stream_xruns_before,
        "jackd_xruns": server_xruns,
        "mean_cpu_load": status.cpu_load,
        "peak_block_load": status.peak_load,
        "max_callback_ms": stats.max_callback_ns / 1e6,
        "peak_block_cpu_load": status.peak_cpu_load,
        "machine_explains": witness.seen.late_blocks_explained(status.cpu_seconds, block_cpu_median_us),
    }
    worst = breakdown(TIMES.worst)
    print("the block that used the most CPU time, µs by stage:",
          ", ".join(f"{name} {us:.0f}" for name, us in worst.items()))
    report("soak_ensemble" if args.parts else "soak", [row], sample_rate=SR, block=BLOCK, voices=args.voices, parts=args.parts, worst_block_us=worst,
           note="late_blocks: blocks whose own CPU time exceeded the block's duration; machine_explains: how many "
                "of them a noise witness (bench.cpu_noise) running beside the soak saw the machine cause",
           witness=witness.seen.describe())


if __name__ == "__main__":
    main()
