"""Where a live soak's slow blocks went, read from the guest kernel's own trace.

    python -m bench.trace_stalls [--seconds 300] [--parts 8] [--slow-us 1500] [--keep FILE]
    python -m bench.trace_stalls --read FILE TID

Runs `bench.soak` (live, on its JACK dummy server, the noise witness beside it) under
`perf record -a` of the scheduler's switches and the entry and exit of every interrupt,
softirq and IPI handler, on CLOCK_MONOTONIC. Then it reads the audio thread's callbacks back
out of the trace: a callback is the thread's runs from a wake-up to its next sleep. For each
it sums the time the thread held a CPU, and the handler time the guest kernel spent on that
CPU in those runs (charged to the thread: this kernel has IRQ_TIME_ACCOUNTING off).

A callback that held the CPU for more than `--slow-us` with no handler time to show for it
ran long with nothing the guest can see: the host took the time (its vCPU stopped or ran
slowly behind the guest's back). The longest such stretch is reported for each.

It also asks, for every task that ran on a callback's CPU in the 2 ms before the callback
began, how often those callbacks were slow against all the others: a task whose work slows
the audio thread shows a rate far above the rest (`after`).

Needs `perf` (Debian: linux-perf) and the right to trace the whole machine (root, or
kernel.perf_event_paranoid <= -1). Writes bench/results/stall-trace.json.
"""

from __future__ import annotations

import argparse
import bisect
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import RESULTS, report
from bench.soak import result_name

HANDLERS = ("irq:irq_handler", "irq:softirq", "irq_vectors:local_timer", "irq_vectors:call_function",
            "irq_vectors:call_function_single", "irq_vectors:reschedule")
EVENTS = ",".join(["sched:sched_switch", *(f"{h}_{end}" for h in HANDLERS for end in ("entry", "exit"))])
BEFORE_S = 0.002
"""How long before a callback another task's run on its CPU counts as coming `after` it."""
LINE = re.compile(r"^\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$")
SWITCH = re.compile(r"prev_comm=(.*) prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=(.*) next_pid=(\d+)")


@dataclass
class Callback:
    """One wake-up of the audio thread: its runs `[(start_s, end_s, cpu)]`."""

    runs: list[tuple[float, float, int]] = field(default_factory=list)

    @property
    def on_cpu_us(self) -> float:
        """Time the thread held a CPU in this callback, µs."""
        return sum(end - start for start, end, _ in self.runs) * 1e6


@dataclass
class Trace:
    """What the trace holds: the audio thread's callbacks, each CPU's handler spans
    (`handlers[cpu]`: sorted `(start_s, end_s)`) and every task's runs per CPU (`runs[cpu]`:
    `(start_s, end_s, comm)`)."""

    callbacks: list[Callback]
    handlers: dict[int, list[tuple[float, float]]]
    runs: dict[int, list[tuple[float, float, str]]]


def read_trace(lines, audio_tid: int) -> Trace:
    """Parse `perf script -F comm,tid,cpu,time,event,trace` output."""
    callbacks, current = [], Callback()
    handlers: dict[int, list[tuple[float, float]]] = defaultdict(list)
    runs: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    opened: dict[tuple[int, str], float] = {}
    on_cpu: dict[int, tuple[int, str, float]] = {}
    for line in lines:
        match = LINE.match(line)
        if match is None:
            continue
        t, cpu, event = float(match[4]), int(match[3]), match[5]
        if event == "sched:sched_switch":
            switch = SWITCH.search(match[6])
            if switch is None:
                continue
            prev, state = int(switch[2]), switch[3]
            if cpu in on_cpu and on_cpu[cpu][0] == prev:
                began = on_cpu[cpu][2]
                runs[cpu].append((began, t, switch[1]))
                if prev == audio_tid:
                    current.runs.append((began, t, cpu))
                    if state.startswith("S"):
                        callbacks.append(current)
                        current = Callback()
            on_cpu[cpu] = (int(switch[5]), switch[4], t)
        elif event.endswith("_entry"):
            opened[(cpu, event[:-6])] = t
        elif event.endswith("_exit"):
            began = opened.pop((cpu, event[:-5]), None)
            if began is not None:
                handlers[cpu].append((began, t))
    for spans in handlers.values():
        spans.sort()
    return Trace(callbacks, dict(handlers), dict(runs))


def handlers_within(trace: Trace, cpu: int, start: float, end: float) -> Iterator[tuple[float, float]]:
    """The handler spans on `cpu` that overlap `[start, end]`, in order, clipped to it (s)."""
    spans = trace.handlers.get(cpu, [])
    for i in range(max(0, bisect.bisect_left(spans, (start,)) - 1), len(spans)):
        began, ended = spans[i]
        if began > end:
            return
        if ended > start:
            yield max(began, start), min(ended, end)


def handler_us(trace: Trace, callback: Callback) -> float:
    """Handler time on the callback's CPUs while it held them, µs."""
    return sum(ended - began for start, end, cpu in callback.runs
               for began, ended in handlers_within(trace, cpu, start, end)) * 1e6


def longest_quiet_us(trace: Trace, callback: Callback) -> float:
    """The longest stretch of the callback's runs with no handler on its CPU, µs."""
    longest = 0.0
    for start, end, cpu in callback.runs:
        edge = start
        for began, ended in handlers_within(trace, cpu, start, end):
            longest = max(longest, began - edge)
            edge = max(edge, ended)
        longest = max(longest, end - edge)
    return longest * 1e6


def tasks_before(trace: Trace, callback: Callback) -> set[str]:
    """The tasks (other than idle and the soak's own threads) that ran on the callback's first
    CPU within `BEFORE_S` before it began."""
    start, _, cpu = callback.runs[0]
    spans = trace.runs.get(cpu, [])
    found = set()
    for i in range(bisect.bisect_left(spans, (start,)) - 1, -1, -1):
        _, ended, comm = spans[i]
        if ended < start - BEFORE_S:
            break
        if not comm.startswith(("swapper", "python")):
            found.add(comm.split("/")[0])
    return found


def summarise(trace: Trace, slow_us: float) -> tuple[dict, list[dict], list[dict]]:
    """The callbacks' totals, the slow ones one by one, and the tasks' `after` rates."""
    on = sorted(c.on_cpu_us for c in trace.callbacks)
    median = on[len(on) // 2] if on else 0.0
    before = [tasks_before(trace, c) for c in trace.callbacks]
    listed = []
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c, tasks in zip(trace.callbacks, before):
        slow = c.on_cpu_us > slow_us
        for task in tasks:
            counts[task][0] += 1
            counts[task][1] += slow
        if slow:
            start, end = c.runs[0][0], c.runs[-1][1]
            listed.append({"at_s": round(start, 6), "on_cpu_us": round(c.on_cpu_us),
                           "wall_us": round((end - start) * 1e6), "runs": len(c.runs),
                           "handler_us": round(handler_us(trace, c)),
                           "longest_quiet_us": round(longest_quiet_us(trace, c)), "tasks_before": sorted(tasks)})
    listed.sort(key=lambda s: -s["on_cpu_us"])
    after = [{"task": task, "callbacks_after": n, "slow_after": k, "slow_rate_after": round(k / n, 4),
              "slow_rate_otherwise": round((len(listed) - k) / max(len(on) - n, 1), 5)}
             for task, (n, k) in sorted(counts.items(), key=lambda kv: -kv[1][1]) if n >= 20]
    totals = {"callbacks": len(on), "median_on_cpu_us": round(median), "slow": len(listed),
              "slow_with_handlers_over_half_their_excess": sum(
                  1 for s in listed if s["handler_us"] > 0.5 * (s["on_cpu_us"] - median))}
    return totals, listed, after


def record(args: argparse.Namespace, data: Path) -> dict:
    """Run the soak under `perf record` into `data`; returns the soak's row."""
    perf = subprocess.Popen(["perf", "record", "-q", "-a", "-k", "CLOCK_MONOTONIC", "-e", EVENTS, "-o", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        soak = subprocess.run([sys.executable, "-m", "bench.soak", "--seconds", str(args.seconds), "--parts",
                               str(args.parts)], check=False)
    finally:
        perf.send_signal(signal.SIGINT)
        _, errors = perf.communicate(timeout=120)
    if perf.returncode not in (0, -signal.SIGINT) or not data.exists() or data.stat().st_size == 0:
        sys.exit(f"trace_stalls: perf record failed: {errors.strip().splitlines()[-1:] or perf.returncode}")
    if soak.returncode:
        sys.exit(f"trace_stalls: the soak failed ({soak.returncode})")
    return json.loads((RESULTS / f"{result_name(args.parts)}.json").read_text())["rows"][0]


def read(data: Path, audio_tid: int) -> Trace:
    """`read_trace` of a perf record."""
    script = subprocess.Popen(["perf", "script", "-i", str(data), "-F", "comm,tid,cpu,time,event,trace"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    trace = read_trace(script.stdout, audio_tid)
    script.wait()
    return trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--slow-us", type=float, default=1500.0,
                        help="a callback on the CPU longer than this (µs) counts as slow")
    parser.add_argument("--keep", type=Path, metavar="FILE",
                        help="keep perf's record in FILE (hundreds of MB for 300 s), to be read again with --read")
    parser.add_argument("--read", nargs=2, metavar=("FILE", "TID"),
                        help="read a kept record again for the audio thread TID, without a new soak")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        sys.exit("trace_stalls: perf is not installed (Debian: apt-get install linux-perf)")
    soaked: dict = {}
    if args.read:
        trace = read(Path(args.read[0]), int(args.read[1]))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            data = args.keep or Path(scratch) / "perf.data"
            soaked = record(args, data)
            trace = read(data, soaked["audio_thread"])
    totals, listed, after = summarise(trace, args.slow_us)
    soak = {"soak_late_blocks": soaked["late_blocks"], "audio_thread": soaked["audio_thread"]} if soaked else {}
    report("stall-trace", [totals | soak], seconds=args.seconds, parts=args.parts,
           slow_us=args.slow_us, slow=listed, after=after,
           note="callbacks: the audio thread's wake-ups in the trace; slow: on a CPU longer than slow_us; "
                "handler_us: interrupt, softirq and IPI time on its CPU while it ran (charged to it); "
                "longest_quiet_us: its longest stretch on the CPU with no handler at all; after: the slow rate of "
                "callbacks that a task's run on the same CPU preceded by under 2 ms, against the others'")
    for s in listed[:12]:
        print(f"slow callback: {s['on_cpu_us']} µs on the CPU ({s['wall_us']} µs wall, {s['runs']} runs), "
              f"{s['handler_us']} µs of handlers, {s['longest_quiet_us']} µs without any, after {s['tasks_before']}")
    for a in after[:8]:
        print(f"after {a['task']}: {a['slow_after']} slow of {a['callbacks_after']} "
              f"({a['slow_rate_after']:.2%}), otherwise {a['slow_rate_otherwise']:.3%}")


if __name__ == "__main__":
    main()
