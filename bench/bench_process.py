"""The live process as the OS sees it: `timbrel play` on a private JACK server, read from /proc.

    python -m bench.bench_process [--seconds 10] [--preset Violin]
        [--scenarios idle,1,16,64,transfer,transfer-midi-out,floor,floor-jack,4x8,8x8]

Starts a private `jackd --no-realtime -d dummy -r 48000 -p 128` (asynchronous, as a real
session runs) and, for each scenario, the real `timbrel play --no-ui` on it, as a user
would run it. This process plays the outside world through JACK: a MIDI keyboard (a JACK
MIDI port that `timbrel play` connects to) and, for transfer, a singer (a sung-like glide on
a JACK audio port connected to the input). After the notes sound, over `--seconds` it reads:

- the whole process's CPU time (utime + stime of /proc/PID/stat, every thread) as % of one core;
- the audio thread's (the thread of /proc/PID/task that PortAudio's JACK callback runs on:
  the one whose CPU time grows most), as % of one core;
- the machine's steal time over the same span, from /proc/stat, as % of one core;
- the engine's own counters, from its status line: late blocks by its own CPU time and by
  the wall clock.

Scenarios: `idle` (preset loaded, nothing played), `1`, `16` and `64` held notes (with
`--voices 64` for the last), `transfer` (the preset in microphone mode, singing;
`transfer-midi-out` the same with `--midi-out`, its tracked pitch sent on `timbrel-pitch`),
`floor`: an empty sounddevice callback on the same server, the I/O's own cost, and
`floor-jack`: the same empty callback through JACK-Client (the `jack` package) instead of
PortAudio's JACK host API, both filling two output ports with zeros from Python; `4x8` and
`8x8`: an ensemble (`timbrel play --multi`) of 4 or 8 parts on channels 1 to 8, each part's
preset with its effects, 8 notes held in each part (`bench.ensembles`). Writes
bench/results/process.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jack
import numpy as np

from bench.ensembles import bench_multi, chord
from bench.jack import dummy_server
from bench.report import report
from timbrel.presets.multi import write_multi

SR, BLOCK = 48000, 128
TICK = os.sysconf("SC_CLK_TCK")
FLOOR_SCRIPT = """
import signal, sounddevice as sd
jack = next(api for api in sd.query_hostapis() if api["name"] == "JACK Audio Connection Kit")
stream = sd.Stream(samplerate=48000, blocksize=128, channels=(1, 2), dtype="float32",
                   device=(jack["default_input_device"], jack["default_output_device"]),
                   callback=lambda indata, outdata, frames, time, status: outdata.fill(0))
stream.start()
print("timbrel: playing", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
"""
FLOOR_JACK_SCRIPT = """
import signal, jack
client = jack.Client("floor", no_start_server=True)
inp = client.inports.register("in")
outs = [client.outports.register(f"out_{i}") for i in (1, 2)]
client.set_process_callback(lambda frames: [port.get_array().fill(0) for port in outs] and None)
client.activate()
client.connect("system:capture_1", inp)
for i, port in enumerate(outs, 1):
    client.connect(port, f"system:playback_{i}")
print("timbrel: playing", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
"""


def thread_names(pid: int) -> dict[int, str]:
    """{thread id: its name (`/proc/PID/task/TID/comm`)} for the threads alive now."""
    names = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            names[int(task.name)] = (task / "comm").read_text().strip()
    return names


def cpu_ticks(pid: int) -> tuple[int, dict[int, int]]:
    """(the process's utime + stime, {thread id: its utime + stime}), in clock ticks."""
    def ticks(stat: str) -> int:
        fields = stat[stat.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])

    whole = ticks(Path(f"/proc/{pid}/stat").read_text())
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            threads[int(task.name)] = ticks((task / "stat").read_text())
        except (OSError, ValueError):
            continue
    return whole, threads


def steal_ticks() -> int:
    """Steal time of every CPU so far (/proc/stat), in clock ticks."""
    return int(Path("/proc/stat").read_text().split("\n")[0].split()[8])


class World:
    """The JACK client that plays the outside world: a MIDI keyboard and a singer."""

    def __init__(self):
        self.client = jack.Client("timbrel-bench-world", no_start_server=True)
        self.midi = self.client.midi_outports.register("keys")
        self.voice_port = self.client.outports.register("voice")
        self.queue: list[bytes] = []
        self.singing = False
        t = np.arange(4 * SR) / SR
        midi = 62 + 5 * 0.5 * (1 - np.cos(2 * np.pi * t / 4.0)) + 0.3 * np.sin(2 * np.pi * 5.5 * t)
        phase = 2 * np.pi * np.cumsum(440.0 * 2 ** ((midi - 69) / 12)) / SR
        tone = sum(np.sin(k * phase) / k**1.5 for k in range(1, 12))
        self.voice = (0.2 * tone / np.abs(tone).max()).astype(np.float32)
        self.position = 0
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        self.midi.clear_buffer()
        while self.queue:
            self.midi.write_midi_event(0, self.queue.pop(0))
        out = self.voice_port.get_array()
        if self.singing:
            index = (self.position + np.arange(frames)) % self.voice.size
            out[:] = self.voice[index]
            self.position = (self.position + frames) % self.voice.size
        else:
            out.fill(0.0)

    def send(self, *messages: bytes) -> None:
        self.queue.extend(messages)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def connect_keys(world: World, timeout: float = 10.0) -> None:
    """Connect the keyboard to `timbrel play`'s MIDI input, waiting for the port to appear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ports = world.client.get_ports("timbrel:", is_input=True, is_midi=True)
        for port in ports:
            if world.midi.name not in [c.name for c in world.client.get_all_connections(port)]:
                world.client.connect(world.midi, port)
        if ports and all(world.midi.name in [c.name for c in world.client.get_all_connections(p)] for p in ports):
            return
        time.sleep(0.1)
    sys.exit("bench_process: timbrel play's MIDI input did not appear on the JACK server")


def start_play(args: list[str], log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "timbrel", "play", "--no-ui", "--midi-backend", "jack", *args]
    handle = open(log, "w")
    return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def floor_process(log: Path, script: str) -> subprocess.Popen:
    handle = open(log, "w")
    return subprocess.Popen([sys.executable, "-c", script], stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_playing(process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench_process: the player exited: {log.read_text()[-2000:]}")
        if "playing" in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    sys.exit(f"bench_process: the player did not start within {timeout:g} s")


def last_status(log: Path) -> dict:
    """The engine's own late-block and xrun counts from the last status line `timbrel play` printed."""
    lines = re.split(r"[\r\n]", log.read_text(errors="replace"))
    found = {}
    for line in lines:
        match = re.search(r"voices\s+(\d+) .*xruns (\d+) \| late blocks (\d+)", line)
        if match:
            found = {"voices": int(match[1]), "stream_xruns": int(match[2]), "late_blocks": int(match[3])}
    return found


def measure(name: str, world: World, seconds: float, preset: str, folder: Path) -> dict:
    log = folder / f"{name}.log"
    notes = {"idle": 0, "1": 1, "16": 16, "64": 64}.get(name, 0)
    parts = int(name.split("x")[0]) if "x" in name else 0
    floor = name.startswith("floor")
    if floor:
        process = floor_process(log, FLOOR_JACK_SCRIPT if name == "floor-jack" else FLOOR_SCRIPT)
    else:
        extra = ["--voices", "64"] if notes > 16 else []
        extra += ["--stages", str(folder / f"{name}.stages.json")]
        if name.startswith("transfer"):
            extra += ["--mode", "transfer", "--mic", ""]
        if name == "transfer-midi-out":
            extra += ["--midi-out"]
        if parts:
            multi = write_multi(bench_multi(parts), folder / f"{name}.toml")
            extra += ["--multi", str(multi)]
        process = start_play(["-p", preset, *extra], log)
    try:
        wait_playing(process, log)
        time.sleep(1.0)
        ports = world.client.get_ports(is_input=True, is_audio=True)
        if not floor:
            connect_keys(world)
        if name.startswith("transfer"):
            inputs = [p.name for p in ports if p.name.startswith("timbrel-audio:in")]
            for port in inputs:
                world.client.connect(world.voice_port, port)
            world.singing = True
        world.send(bytes([0xB0, 64, 127]))
        for i in range(notes):
            world.send(bytes([0x90, 36 + i if notes > 16 else 48 + 2 * i, 80]))
        for part in range(parts):
            world.send(bytes([0xB0 | part, 64, 127]), *(bytes([0x90 | part, key, 80]) for key in chord(part, 8)))
        time.sleep(1.5)
        if not floor:
            process.send_signal(signal.SIGUSR1)
        began = time.monotonic()
        whole0, threads0 = cpu_ticks(process.pid)
        steal0 = steal_ticks()
        time.sleep(seconds)
        whole1, threads1 = cpu_ticks(process.pid)
        steal1 = steal_ticks()
        elapsed = time.monotonic() - began
        names = thread_names(process.pid)
        if not floor:
            process.send_signal(signal.SIGUSR2)
            time.sleep(0.6)
            status = last_status(log)
        grown = {tid: threads1[tid] - threads0.get(tid, 0) for tid in threads1}
        audio = max(grown.values()) if grown else 0
        world.send(bytes([0xB0, 123, 0]), bytes([0xB0, 64, 0]))
        world.singing = False
        time.sleep(0.6)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    per_core = 100.0 / (TICK * elapsed)
    busy = sorted(((ticks, tid) for tid, ticks in grown.items() if ticks), reverse=True)
    row = {"scenario": name, "notes": notes, "process_cpu_pct": (whole1 - whole0) * per_core,
           "audio_thread_cpu_pct": audio * per_core, "steal_pct": (steal1 - steal0) * per_core, "seconds": elapsed,
           "threads_cpu_pct": {f"{names.get(tid, '?')} ({tid})": ticks * per_core for ticks, tid in busy}}
    if floor:
        return row
    expected = 1 if name.startswith("transfer") else 8 * parts if parts else notes
    if status.get("voices") != expected:
        sys.exit(f"bench_process: {name}: {status.get('voices')} voices sounded, not {expected}; see {log}")
    stages = json.loads((folder / f"{name}.stages.json").read_text())
    return row | status | {"stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--preset", default="Violin")
    parser.add_argument("--scenarios", default="floor,idle,1,16,64,transfer")
    parser.add_argument("--name", default="process", help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"timbrel-bench-process-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    with dummy_server("process", SR, BLOCK) as server:
        world = World()
        try:
            for name in args.scenarios.split(","):
                xruns = server.xruns()
                row = measure(name, world, args.seconds, args.preset, folder)
                row["jackd_xruns"] = server.xruns() - xruns
                rows.append(row)
                print(f"  {name}: process {row['process_cpu_pct']:.1f} %, audio thread "
                      f"{row['audio_thread_cpu_pct']:.1f} %", file=sys.stderr)
        finally:
            world.close()
    stages = {row["scenario"]: row.pop("stages") for row in rows if "stages" in row}
    for row in rows:
        if row["scenario"] in stages:
            block = stages[row["scenario"]]["stages"]
            row["block_cpu_median_us"] = block["cpu"]["median_us"]
            row["block_cpu_max_pct"] = 100 * block["cpu"]["max_us"] / (1e6 * BLOCK / SR)
    report(args.name, rows, sample_rate=SR, block=BLOCK, preset=args.preset, seconds=args.seconds, stages=stages,
           note="CPU as % of one core, from /proc over the span; late_blocks by the engine's own CPU time; "
                "stages: per-stage wall µs per block inside the live process over the same span")
    for row in rows:
        threads = ", ".join(f"{thread} {pct:.1f}" for thread, pct in row["threads_cpu_pct"].items())
        print(f"{row['scenario']}: threads (% of a core): {threads}")
    for name, found in stages.items():
        print(f"\n{name}: {found['blocks']} blocks, per-stage µs (median / p99 / max)")
        for stage, figures in found["stages"].items():
            print(f"  {stage:16s} {figures['median_us']:8.1f} {figures['p99_us']:8.1f} {figures['max_us']:8.1f}")


if __name__ == "__main__":
    main()
