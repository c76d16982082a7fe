"""`bench.trace_stalls` reads the audio thread's callbacks, and what ran around them, out of a
`perf script` trace."""

from __future__ import annotations

from bench.trace_stalls import longest_quiet_us, read_trace, summarise, tasks_before

AUDIO = 700


def switch(t: float, cpu: int, prev: str, prev_pid: int, state: str, nxt: str, next_pid: int) -> str:
    return (f"{prev:>16} {prev_pid:6d} [{cpu:03d}] {t:.6f}: sched:sched_switch: prev_comm={prev} prev_pid={prev_pid} "
            f"prev_prio=120 prev_state={state} ==> next_comm={nxt} next_pid={next_pid} next_prio=120")


def handler(t0: float, t1: float, cpu: int, comm: str, pid: int) -> list[str]:
    return [f"{comm:>16} {pid:6d} [{cpu:03d}] {t0:.6f}: irq_vectors:local_timer_entry: vector=236",
            f"{comm:>16} {pid:6d} [{cpu:03d}] {t1:.6f}: irq_vectors:local_timer_exit: vector=236"]


def trace_lines() -> list[str]:
    lines = [
        # An ordinary callback on CPU 0: 600 µs, with a 10 µs timer interrupt inside.
        switch(1.000000, 0, "swapper/0", 0, "R", "python", AUDIO),
        *handler(1.000300, 1.000310, 0, "python", AUDIO),
        switch(1.000600, 0, "python", AUDIO, "S", "swapper/0", 0),
        # A kernel thread runs on CPU 1 just before the next callback there.
        switch(1.002000, 1, "swapper/1", 0, "R", "kdamond.0", 83),
        switch(1.002500, 1, "kdamond.0", 83, "I", "swapper/1", 0),
        # A slow callback on CPU 1, preempted once: 2.4 ms then 1 ms on the CPU, no handler at all.
        switch(1.002667, 1, "swapper/1", 0, "R", "python", AUDIO),
        switch(1.005067, 1, "python", AUDIO, "R", "jackd", 50),
        switch(1.005100, 1, "jackd", 50, "S", "python", AUDIO),
        switch(1.006100, 1, "python", AUDIO, "S", "swapper/1", 0),
        "garbage that is not a trace line",
    ]
    return lines


def test_callbacks_are_the_audio_threads_runs_from_a_wake_up_to_its_next_sleep():
    trace = read_trace(trace_lines(), AUDIO)
    assert len(trace.callbacks) == 2
    ordinary, slow = trace.callbacks
    assert round(ordinary.on_cpu_us) == 600 and len(slow.runs) == 2 and round(slow.on_cpu_us) == 3400
    assert round(longest_quiet_us(trace, ordinary)) == 300
    assert round(longest_quiet_us(trace, slow)) == 2400
    assert tasks_before(trace, slow) == {"kdamond.0"}
    assert tasks_before(trace, ordinary) == set()


def test_a_slow_callback_is_listed_with_its_handler_time_and_the_tasks_before_it():
    totals, listed, _ = summarise(read_trace(trace_lines(), AUDIO), slow_us=1500.0)
    assert totals["callbacks"] == 2 and totals["slow"] == 1
    assert totals["slow_with_handlers_over_half_their_excess"] == 0
    (slow,) = listed
    assert slow["on_cpu_us"] == 3400 and slow["wall_us"] == 3433 and slow["runs"] == 2
    assert slow["handler_us"] == 0 and slow["longest_quiet_us"] == 2400
    assert slow["tasks_before"] == ["kdamond.0"]
