"""Live on a JACK dummy server: preset switches while 16 voices sound, and the control surface
under a flood of requests.

    python -m bench.bench_live [--switches 100] [--hold-seconds 5] [--hammer-seconds 5] [--threads 6]

Starts a private `jackd --no-realtime -d dummy -r 48000 -p 128` (asynchronous, as a real
session runs), and a `Session` on it as `timbrel play` runs one (16 voices, a scratch user
folder). Then:

- **switching**: a chord and 13 quiet notes held, the pedal down, and `--switches` preset
  loads cycling through the MIDI presets, each waited for; the time each load took off the
  audio thread, the engine's late blocks and errors over the run, and the CPU time of the
  blocks that crossfaded (old and new chain both running) against the others;
- **holding**: the same notes held for `--hold-seconds` with nothing else happening, the
  baseline for the others;
- **hammer**: the control surface served as `timbrel play` serves it, and `--threads`
  keep-alive clients in a process of their own calling status, describe, spectrum and
  parameter endpoints as fast as they can; requests served, how many reached the engine
  process, and the engine's late blocks.

Late blocks are counted by the engine's own CPU time (its fault) and by the wall clock
(which includes preemption on a shared machine); beside them, how many late blocks the
machine alone explains, from a `bench.cpu_noise.NoiseWitness` run beside each scenario.
How late each callback began against the server's cycle (`AudioStream`'s schedule) shows
waits before the engine ran at all: for the scheduler, or for the GIL held by another
thread (the loader, the surface's bridge). Stream xruns are whatever PortAudio flagged, next
to the xruns jackd logged. Writes bench/results/live.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from bench.cpu_noise import NoiseWitness
from bench.jack import DummyServer, dummy_server
from bench.report import report
from timbrel.engine.realtime.stages import CPU, CROSSFADE, START, TIMES, breakdown
from timbrel.presets.library import Library
from timbrel.session import Session
from timbrel.ui.server import serve

SR, BLOCK = 48000, 128
BLOCK_US = BLOCK / SR * 1e6
CHORD = (60, 64, 67)
QUIET = tuple(range(69, 82))
HAMMER_PRESET = "Violin"
"""Its chain has the EQ whose `eq.peak1_db` the clients move."""


def hammer(url: str, seconds: float, threads: int) -> dict:
    """In a process of its own: `threads` keep-alive clients cycling through status, describe,
    spectrum and parameter requests as fast as they can for `seconds`. Returns counts.

    The clients stand for browsers on other machines, so they run at the lowest CPU priority:
    on this test's two shared cores and a JACK server without real-time scheduling, clients
    at full priority would starve the audio threads of CPU whatever the server did.
    """
    os.nice(19)
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    counts = {"ok": 0, "failed": 0, "by_path": {}}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    paths = ["/api/status", "/api/describe", "/api/spectrum", "/api/parameter"]

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        ok = failed = 0
        by_path = dict.fromkeys(paths, 0)
        i = index
        while time.monotonic() < deadline:
            path = paths[i % len(paths)]
            i += 1
            try:
                if path == "/api/parameter":
                    body = json.dumps({"id": "eq.peak1_db", "value": float(i % 7 - 3)})
                    connection.request("POST", path, body, {"Content-Type": "application/json"})
                else:
                    connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    ok += 1
                    by_path[path] += 1
                else:
                    failed += 1
            except (OSError, http.client.HTTPException):
                failed += 1
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.close()
        with lock:
            counts["ok"] += ok
            counts["failed"] += failed
            for path, n in by_path.items():
                counts["by_path"][path] = counts["by_path"].get(path, 0) + n

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counts


def hammering(session, surface, seconds: float, threads: int, jack: DummyServer | None = None) -> dict:
    """Hammer `surface` (serving `session`, which should be sounding) for `seconds` from
    `threads` clients in a spawned process; returns the counts and what the engine did meanwhile."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(time.sleep, 0).result(timeout=60)
        session.engine.reset_meters()
        TIMES.clear()
        stream_xruns, server_xruns = session.status()["xruns"], jack.xruns() if jack else 0
        engine_requests = surface.engine_requests
        began = time.monotonic()
        counts = pool.submit(hammer, surface.url, seconds, threads).result(timeout=60 + seconds)
        elapsed = time.monotonic() - began
    engine = session.engine.status()
    return {
        "requests": counts["ok"], "requests_per_s": counts["ok"] / seconds, "failed": counts["failed"],
        "by_path": counts["by_path"], "engine_requests": surface.engine_requests - engine_requests,
        "seconds": elapsed, "blocks": engine.blocks, "voices": engine.voices,
        "late_blocks": engine.late_blocks, "peak_block_cpu_load": engine.peak_cpu_load,
        "late_blocks_wall_clock": engine.late_blocks_wall_clock, "engine_errors": engine.errors,
        "mean_cpu_load": engine.cpu_load, "stream_xruns": session.status()["xruns"] - stream_xruns,
        "jackd_xruns": jack.xruns() - server_xruns if jack else None, **starts(TIMES.snapshot()),
        "worst_block_us": breakdown(TIMES.worst),
    }


def starts(rows: np.ndarray) -> dict:
    """How late the callbacks of `rows` (`TIMES.snapshot`) began against the server's cycle, µs."""
    late = rows[:, START] / 1000.0
    return {"start_late_median_us": float(np.median(late)), "start_late_p99_us": float(np.percentile(late, 99)),
            "start_late_max_us": float(late.max()), "starts_over_half_a_block": int((late > BLOCK_US / 2).sum())}


def holding(session, seconds: float) -> dict:
    """The engine over `seconds` while whatever sounds goes on sounding and nothing else happens:
    the baseline the other scenarios' callback starts are read against."""
    session.engine.reset_meters()
    TIMES.clear()
    time.sleep(seconds)
    engine = session.engine.status()
    return {"seconds": seconds, "blocks": engine.blocks, "voices": engine.voices, "late_blocks": engine.late_blocks,
            "peak_block_cpu_load": engine.peak_cpu_load, "late_blocks_wall_clock": engine.late_blocks_wall_clock,
            **starts(TIMES.snapshot())}


def switching(session, names: list[str], switches: int) -> dict:
    """Hold a chord and 13 quiet notes with the pedal down (note 64 released, so the pedal alone
    holds it), then make `switches` preset loads cycling through `names`, each waited for and
    crossfaded in. Returns the figures; the notes and the pedal stay held."""
    for note in CHORD:
        session.note_on(note, 100)
    for note in QUIET:
        session.note_on(note, 30)
    session.control_change(64, 127)
    session.note_off(64)
    time.sleep(0.3)
    session.engine.reset_meters()
    TIMES.clear()
    stream_xruns = session.status()["xruns"]
    took = []
    for i in range(switches):
        began = time.perf_counter()
        session.load(names[(i + 1) % len(names)], wait=True)
        took.append(time.perf_counter() - began)
        session.wait_idle()
        time.sleep(0.03)
    engine = session.engine.status()
    rows = TIMES.snapshot()
    crossfading = rows[:, CROSSFADE] > 0
    fading, other = rows[crossfading, CPU] / 1000.0, rows[~crossfading, CPU] / 1000.0
    row = {"switches": switches, "switch_ms_median": 1000 * float(np.median(took)),
           "crossfade_blocks": int(fading.size), "crossfade_cpu_median_us": float(np.median(fading)),
           "crossfade_cpu_max_us": float(fading.max()), "other_cpu_median_us": float(np.median(other)),
           "switch_ms_max": 1000 * float(np.max(took)), "blocks": engine.blocks,
           "notes_held": len(session.engine.keyboard.held_notes()),
           "late_blocks": engine.late_blocks, "peak_block_cpu_load": engine.peak_cpu_load,
           "late_blocks_wall_clock": engine.late_blocks_wall_clock,
           "engine_errors": engine.errors, "stream_xruns": session.status()["xruns"] - stream_xruns,
           "preset_switches": session.switches, **starts(rows), "worst_block_us": breakdown(TIMES.worst)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=100)
    parser.add_argument("--hammer-seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--hold-seconds", type=float, default=5.0)
    args = parser.parse_args()
    with dummy_server("live", SR, BLOCK) as jack:
        session = Session(library=Library(user_dir=tempfile.mkdtemp()), sample_rate=SR, block_size=BLOCK,
                          voices=16)
        names = [p.name for p in session.library.list() if p.mode == "midi"]
        try:
            session.start(names[0], use_midi=False)
            before = jack.xruns()
            with NoiseWitness() as witness:
                switched = switching(session, names, args.switches)
            switched["jackd_xruns"] = jack.xruns() - before
            switched["machine_explains"] = witness.seen.explains(TIMES.snapshot())
            held = holding(session, args.hold_seconds)
            session.control_change(123, 0)
            session.control_change(64, 0)
            session.load(HAMMER_PRESET, wait=True)
            for note in range(48, 80, 2):
                session.note_on(note, 90)
            time.sleep(0.3)
            surface = serve(session, port=0)
            try:
                with NoiseWitness() as witness:
                    hammered = hammering(session, surface, args.hammer_seconds, args.threads, jack)
                hammered["machine_explains"] = witness.seen.explains(TIMES.snapshot())
            finally:
                surface.close()
        finally:
            session.close()
    hammered.pop("by_path")
    worst = {"switching": switched.pop("worst_block_us"), "hammer": hammered.pop("worst_block_us")}
    for scenario, stages in worst.items():
        print(f"{scenario}: the block that used the most CPU time, µs by stage:",
              ", ".join(f"{name} {us:.0f}" for name, us in stages.items()))
    report("live", [{"scenario": "switching", **switched}, {"scenario": "holding", **held},
                    {"scenario": "hammer", **hammered}],
           sample_rate=SR, block=BLOCK, voices=16, presets=len(names), threads=args.threads, worst_block_us=worst,
           note="late_blocks: blocks whose own CPU time exceeded the block's duration; machine_explains: "
                "how many of them a noise witness (bench.cpu_noise) running beside the scenario saw the machine cause")


if __name__ == "__main__":
    main()
