"""Soak test: timbrel playing live on a JACK dummy server for minutes, under a stream of MIDI.

    python -m bench.soak [--seconds 600] [--voices 16] [--parts N] [--empty] [--list-over F]
    python -m bench.soak --offline [--repeat 3] [--seconds 300] [--parts N] [--cold] [--neighbour] [--paced]

Starts a private `jackd --no-realtime -d dummy -r 48000 -p 128` (asynchronous, as a real
session runs), plays the shipped model with 16 voices through the same objects as
`timbrel play`, and has a separate process send random chords, pitch bends, mod wheel
and sustain pedal (`phrases`) into timbrel's virtual MIDI port. Counts, at the end:

- late blocks: blocks whose processing took longer than the block lasts, by the wall
  clock (`late_blocks_wall_clock`, which includes the thread being preempted by other
  processes on this 2-core machine) and by the thread's own CPU time (`late_blocks`);
- how many late blocks the machine alone explains, from a `bench.cpu_noise.NoiseWitness`
  running beside the soak;
- stream xruns: blocks PortAudio flagged (any cause, including the dummy driver's timer
  oversleeping on a shared, non-real-time machine), next to the xruns jackd logged;
- the audio thread's minor page faults (`/proc`), and how many late blocks fell in a 0.2 s
  window in which it took one (a fault is a trip into the kernel, and on a VM into the host);
- charges of 1 and 2 ms or more per second of CPU time, the engine's (a block over its
  window's median by that much) beside the witness's and a second, paging witness's (the same
  loop after writing into every page of 16 MiB), so that the rates can be compared.

Every late block is listed stage by stage (`--list-over F` lists every block past the
fraction F of its budget instead). With `--parts N` it plays an ensemble (`bench.ensembles`:
N parts of 8 voices on channels 1 to N, each preset with its effects), the messages spread
over those channels; with `--empty` it loads nothing, so that what the live path and the
machine cost an idle callback shows on its own.

A thread's CPU time on these virtual machines is not all its own: the host charges it
stalls of milliseconds at random (an empty callback gets them too). `--offline` separates
the two: it renders the same playing on one thread `--repeat` times, each on a fresh
engine, and since the engine is deterministic, a block's least CPU time over the runs is
the engine's own (a charge would have to hit the same block in every run). `--neighbour`
runs a busy process beside it, to see whether a busy second core slows the first. `--cold`
reads 64 MB before every block, so that each block starts on cold caches: what the live
process meets when the host's other tenants have used the shared cache between two blocks.
`--paced` sleeps to each block period's deadline between blocks, as the live callback waits for
its server, with no JACK, no MIDI and no other thread: the live path's own share of the stalls.

Writes bench/results/soak.json, soak_ensemble.json (4 parts; soak_ensembleN.json for N),
soak_empty.json, and `_offline` beside each for `--offline` (`_offline_cold` for `--cold`,
`_offline_paced` for `--paced`).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np

from bench.cpu_noise import BLOCK_US, NoiseWitness
from bench.ensembles import bench_multi
from bench.jack import dummy_server
from bench.report import report
from timbrel.engine.io.audio import AudioStream
from timbrel.engine.io.midi import MidiInput
from timbrel.engine.realtime.host import Engine
from timbrel.engine.realtime.stages import COLUMNS, CPU, STAGES, TIMES, WALL, breakdown, describe
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import load_model
from timbrel.presets import default_model
from timbrel.presets.multi import build_ensemble
from timbrel.runtime_policy import RealtimePolicy

SR, BLOCK = 48000, 128
CHARGE_US = (1000, 2000)
"""Sizes of charge counted over the whole soak, the engine's and the witness's: a block whose CPU
time exceeds its 0.2 s window's median by this much, a witness wake-up its own median by this much."""
PAGING_WITNESS_MB = 16
"""The second witness's pages (`NoiseWitness(touch_mb=...)`), of the order of the 8-part engine's."""
EVICT_BYTES = 64 << 20
"""More than this machine's caches hold (a 32 MB L3 shared by the host's tenants)."""


def phrases(seed: int, channels: int = 1) -> Iterator[tuple[list[list[int]], float]]:
    """The soak's endless playing: random chords, releases, bends, mod wheel and pedal, each
    group of messages on one of the first `channels` channels, with the seconds to wait after it."""
    rng = random.Random(seed)
    held: list[int] = []
    while True:
        channel = rng.randrange(channels)
        choice = rng.random()
        group: list[list[int]] = []
        if choice < 0.35 or not held:
            root = rng.randrange(40, 76)
            for note in (root, root + rng.choice((3, 4)), root + 7, root + rng.choice((10, 11, 12))):
                group.append([0x90 | channel, note, rng.randrange(30, 127)])
                held.append(note)
        elif choice < 0.6:
            for note in held[: rng.randrange(1, len(held) + 1)]:
                group.append([0x80 | channel, note, 0])
                held.remove(note)
        elif choice < 0.75:
            value = rng.randrange(0, 16384)
            group.append([0xE0 | channel, value & 0x7F, value >> 7])
        elif choice < 0.85:
            group.append([0xB0 | channel, 1, rng.randrange(0, 128)])
        else:
            group.append([0xB0 | channel, 64, rng.choice((0, 127))])
        if len(held) > 24:
            group.extend([0x80 | c, note, 0] for note in held for c in range(channels))
            held.clear()
        yield group, rng.uniform(0.02, 0.25)


def sender(server: str, seconds: float, seed: int, channels: int = 1) -> None:
    """Child process: `phrases` into `timbrel:timbrel` for `seconds`, then all notes off."""
    os.environ["JACK_DEFAULT_SERVER"] = server
    import rtmidi

    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="soak")
    out.open_virtual_port("out")
    time.sleep(0.5)
    subprocess.run(["jack_connect", "soak:out", "timbrel:timbrel"], check=False)
    end = time.monotonic() + seconds
    sent = 0
    for group, wait_s in phrases(seed, channels):
        if time.monotonic() >= end:
            break
        for message in group:
            out.send_message(message)
        sent += len(group)
        time.sleep(wait_s)
    out.send_message([0xB0, 123, 0])
    print(sent, flush=True)


def replay(engine: Engine, seconds: float, seed: int, channels: int, audio: np.ndarray | None = None,
           evict: np.ndarray | None = None, paced: bool = False) -> np.ndarray:
    """The same playing rendered offline, block after block on this thread, as fast as it
    goes: each block's own CPU time, ns `[blocks]` (no audio device, no other process). The
    output goes to `audio` float32 `[blocks * BLOCK, 2]` when given. With `evict` (an array
    larger than the caches), every block starts after reading it: on cold caches. `paced`: the
    thread sleeps until each block period's deadline, as an audio callback waits for its server."""
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    blocks = int(seconds * SR / BLOCK)
    cpu = np.zeros(blocks, dtype=np.int64)
    playing = phrases(seed, channels)
    due = 0.0
    deadline = time.monotonic()
    for b in range(blocks):
        while b * BLOCK / SR >= due:
            group, wait_s = next(playing)
            for message in group:
                engine.events.push_message(message)
            due += wait_s
        if evict is not None:
            evict.sum()
        engine.process(None, out)
        cpu[b] = TIMES.since(TIMES.blocks - 1)[0, CPU]
        if audio is not None:
            audio[b * BLOCK:(b + 1) * BLOCK] = out
        if paced:
            deadline += BLOCK / SR
            time.sleep(max(0.0, deadline - time.monotonic()))
    return cpu


def loaded_engine(args: argparse.Namespace) -> Engine:
    """An engine playing what `args` ask for: an ensemble, nothing, or the shipped model."""
    engine = Engine(SR, 2048)
    if args.parts:
        engine.load(build_ensemble(bench_multi(args.parts)))
    elif not args.empty:
        engine.load(MidiInstrument(load_model(default_model()), voices=args.voices))
    return engine


def offline(args: argparse.Namespace, name: str) -> None:
    """`replay` for `args.seconds`, `args.repeat` times over, each on a fresh engine after a
    second of warm-up. The engine is deterministic, so a block's least CPU time over the runs
    is the engine's own cost: the machine's random charges would have to hit the same block
    in every run to survive it. One row per run, then one for the least of each block."""
    runs = []
    evict = np.ones(EVICT_BYTES // 8) if args.cold else None
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.neighbour else None
    try:
        for _ in range(args.repeat):
            engine = loaded_engine(args)
            with RealtimePolicy():  # as `timbrel play` plays: no garbage collection in a block
                replay(engine, 1.0, args.seed + 1, max(args.parts, 1))
                TIMES.clear()
                runs.append(replay(engine, args.seconds, args.seed, max(args.parts, 1), evict=evict,
                                   paced=args.paced) / 1e3)
    finally:
        if neighbour is not None:
            neighbour.kill()
    runs.append(np.min(runs, axis=0))
    rows = [{"run": f"{k + 1}" if k < args.repeat else "least of each block", "seconds": args.seconds,
             "blocks": int(cpu_us.size), "late_blocks": int((cpu_us > BLOCK_US).sum()),
             "median_us": float(np.median(cpu_us)), "p99_us": float(np.percentile(cpu_us, 99)),
             "p99_9_us": float(np.percentile(cpu_us, 99.9)), "max_us": float(cpu_us.max()),
             "peak_block_cpu_load": float(cpu_us.max() / BLOCK_US)} for k, cpu_us in enumerate(runs)]
    report(name + ("_neighbour" if args.neighbour else "") + ("_cold" if args.cold else "")
           + ("_paced" if args.paced else ""), rows, sample_rate=SR,
           block=BLOCK, voices=args.voices, parts=args.parts, neighbour=args.neighbour, cold=args.cold,
           paced=args.paced,
           note="the soak's playing rendered offline, block after block on one thread, on a fresh engine each run: "
                "each block's own CPU time; the last row takes each block's least time over the runs")


def result_name(parts: int, empty: bool = False) -> str:
    """The name of a live soak's results file (`bench/results/NAME.json`)."""
    if empty:
        return "soak_empty"
    return "soak" if not parts else "soak_ensemble" if parts == 4 else f"soak_ensemble{parts}"


def thread_counters() -> dict[int, tuple[int, int]]:
    """Each thread of this process: tid -> (CPU clock ticks used, minor page faults taken), from /proc."""
    counters = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        counters[int(task)] = (int(fields[11]) + int(fields[12]), int(fields[7]))
    return counters


def busiest_thread(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> int:
    """The thread that used the most CPU time between two `thread_counters`: the audio thread,
    once the stream runs and loading is over."""
    return max(after, key=lambda tid: after[tid][0] - before.get(tid, (0, 0))[0])


def charges(rows: np.ndarray, usual: np.ndarray) -> dict[str, int]:
    """Of the late blocks among `rows` (stage rows, ns), how many bear a charge that is not the
    engine's work: `late_cpu_over_wall`, blocks whose CPU time exceeds their own wall time by
    more than 100 µs (one thread cannot use more CPU than time passes: the time was charged to
    it); `late_one_stage`, the rest of those where one stage took ten times its `usual` (the
    column's median, ns) or more and its excess alone made the block late (a stall landed in
    one stage; a block running slow throughout, as on cold caches, has no such stage)."""
    late = rows[rows[:, CPU] > BLOCK_US * 1e3]
    over_wall = late[:, CPU] > late[:, WALL] + 100_000
    stages = late[:, : len(STAGES)]
    excess = stages - usual[: len(STAGES)]
    stage = np.argmax(excess, axis=1)
    picked = np.arange(late.shape[0])
    stalled = (stages[picked, stage] >= 10 * usual[stage]) & (late[:, CPU] - excess[picked, stage] <= BLOCK_US * 1e3)
    return {"late_cpu_over_wall": int(over_wall.sum()), "late_one_stage": int((~over_wall & stalled).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--voices", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", type=int, default=0, help="play an ensemble of this many parts of 8 voices")
    parser.add_argument("--list-over", type=float, default=1.0, metavar="FRACTION",
                        help="list, stage by stage, every block whose CPU time passed this fraction of its budget")
    parser.add_argument("--empty", action="store_true", help="load nothing: the floor of the live path")
    parser.add_argument("--offline", action="store_true",
                        help="render the same playing offline on one thread (the engine's own cost, no live path)")
    parser.add_argument("--repeat", type=int, default=3, help="offline: runs of the same playing")
    parser.add_argument("--neighbour", action="store_true",
                        help="offline: with a process spinning beside the engine, on the other core of two")
    parser.add_argument("--cold", action="store_true",
                        help="offline: read 64 MB before every block, so that each starts on cold caches")
    parser.add_argument("--paced", action="store_true",
                        help="offline: sleep to each block period's deadline between blocks, as a callback waits")
    parser.add_argument("--send", nargs=4, metavar=("SERVER", "SECONDS", "SEED", "CHANNELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        sender(args.send[0], float(args.send[1]), int(args.send[2]), int(args.send[3]))
        return
    name = result_name(args.parts, args.empty)
    if args.offline:
        offline(args, name + "_offline")
        return
    with dummy_server("soak", SR, BLOCK) as server:
        engine = loaded_engine(args)
        midi = MidiInput(engine.events, ports=[], backend="jack")
        stream = AudioStream(engine.process, SR, BLOCK)
        policy = RealtimePolicy()
        policy.enter()  # as `timbrel play` plays
        stream.start()
        threads = thread_counters()
        time.sleep(1.0)
        audio_thread = busiest_thread(threads, thread_counters())
        engine.reset_meters()
        TIMES.clear()
        server_xruns_before = server.xruns()
        stream_xruns_before = stream.xruns
        child = subprocess.Popen([sys.executable, "-m", "bench.soak", "--send", server.name, str(args.seconds), str(args.seed),
                                  str(max(args.parts, 1))],
                                 stdout=subprocess.PIPE, text=True)
        most_voices = 0
        read = TIMES.blocks
        late_rows = []
        late_when = []
        faults_at_start = faults = thread_counters()[audio_thread][1]
        faulting_windows = []
        charged = np.zeros(len(CHARGE_US), dtype=np.int64)
        began = time.monotonic()
        with NoiseWitness() as witness, NoiseWitness(touch_mb=PAGING_WITNESS_MB) as paging:
            while child.poll() is None:
                time.sleep(0.2)
                most_voices = max(most_voices, engine.status().voices)
                rows = TIMES.since(read)
                read += rows.shape[0]
                now_faults = thread_counters().get(audio_thread, (0, faults))[1]
                over = rows[rows[:, CPU] > BLOCK_US * 1e3 * args.list_over]
                if rows.shape[0]:
                    excess_us = (rows[:, CPU] - np.median(rows[:, CPU])) / 1e3
                    charged += [int((excess_us >= size).sum()) for size in CHARGE_US]
                late_rows.extend(over)
                when = round(time.monotonic() - began, 1)
                late_when.extend([(when, now_faults - faults)] * over.shape[0])
                if now_faults > faults:
                    faulting_windows.append((when, now_faults - faults))
                faults = now_faults
        elapsed = time.monotonic() - began
        sent = int(child.stdout.read().strip() or 0)
        status = engine.status()
        recent = TIMES.snapshot()
        block_cpu_median_us = float(np.median(recent[:, CPU])) / 1e3
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
        "audio_thread": audio_thread,
        "audio_thread_page_faults": faults - faults_at_start,
        "late_in_faulting_window": sum(1 for _, window_faults in late_when if window_faults),
        **{f"charges_over_{size // 1000}ms_per_cpu_s": round(count / status.cpu_seconds, 4)
           for size, count in zip(CHARGE_US, charged)},
        **{f"witness_charges_over_{size // 1000}ms_per_cpu_s": round(witness.seen.rate(size), 4) for size in CHARGE_US},
        **{f"paging_witness_charges_over_{size // 1000}ms_per_cpu_s": round(paging.seen.rate(size), 4)
           for size in CHARGE_US},
        "machine_explains": witness.seen.late_blocks_explained(status.cpu_seconds, block_cpu_median_us),
        **charges(np.array(late_rows).reshape(-1, len(COLUMNS)), np.median(recent, axis=0)),
    }
    for late_row, (when, window_faults) in zip(late_rows, late_when):
        print(f"block over {args.list_over:.0%} of its budget at {when} s ({window_faults} page faults in its 0.2 s), "
              "µs by stage:", describe(late_row))
    print("the block that used the most CPU time, µs by stage:", describe(TIMES.worst))
    late = [breakdown(row) | {"at_s": when, "page_faults_near": window_faults}
            for row, (when, window_faults) in zip(late_rows, late_when)]
    worst = breakdown(TIMES.worst)
    report(name, [row], sample_rate=SR, block=BLOCK, voices=args.voices, parts=args.parts, worst_block_us=worst,
           note="late_blocks: blocks whose own CPU time exceeded the block's duration; machine_explains: how many "
                "of them a noise witness (bench.cpu_noise) running beside the soak saw the machine cause; "
                "late_cpu_over_wall and late_one_stage: see bench.soak.charges",
           witness=witness.seen.describe(), paging_witness=paging.seen.describe(), list_over=args.list_over,
           late_blocks_us=late,
           faulting_windows=faulting_windows[:200])


if __name__ == "__main__":
    main()
