"""The real-time engine: the block callback, and the control API other threads use.

Threads (docs/ARCHITECTURE.md has the full picture):

- the **audio thread** calls `process` once per block. It drains the MIDI event queue,
  runs the current plugin, crossfades to a newly loaded one, limits the output and
  updates the meters. It never allocates arrays, never takes a lock, never logs and never
  raises: an exception inside a plugin silences that block and is counted.
- **MIDI input threads** only push into `events` (lock-free, see `timbrel.engine.realtime.events`).
- **control threads** (the CLI, a UI) call `load`, `set_parameter`, `status`: these only
  write single values or swap single references, which the audio thread picks up at its
  next block. `load` prepares the new plugin on the caller's thread, never the audio one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Plugin
from timbrel.engine.realtime.events import EventQueue
from timbrel.engine.realtime.kernels.limiter import deliver
from timbrel.engine.realtime.kernels.mixing import crossfade, peak
from timbrel.engine.realtime.midi_state import MidiState
from timbrel.engine.realtime.stages import CROSSFADE, DRAIN, LIMITER, METERS, SWAP, TIMES

CROSSFADE_S = 0.02
LIMIT_CEILING = 0.98
LIMIT_RELEASE_S = 0.05
MAX_EVENTS_PER_BLOCK = 1024
SCOPE_SAMPLES = 8192


@dataclass(frozen=True)
class EngineStatus:
    """A snapshot of the meters, safe to take from any thread."""

    sample_rate: int
    block_size: int
    voices: int
    cpu_load: float
    """Mean share of the block's duration spent in `process` (0.25 = 25 % of a core)."""
    peak_load: float
    """Largest share of a block's duration one block took, by the wall clock."""
    peak_cpu_load: float
    """Largest share of a block's duration one block used in its own CPU time (0.5: half the budget)."""
    input_peak: float
    output_peak: float
    blocks: int
    cpu_seconds: float
    """CPU time `process` used over those blocks, s."""
    late_blocks_wall_clock: int
    """Blocks whose processing took longer than the block lasts, by the wall clock."""
    late_blocks: int
    """Blocks whose processing used more CPU time than the block lasts: the engine's own work,
    not the thread being preempted, except what the kernel charges to the running thread
    (interrupts, on kernels without IRQ time accounting; `bench.cpu_noise` measures it)."""
    errors: int
    """Blocks silenced because a plugin raised."""
    latency_samples: int
    plugin: str
    faults: tuple[str, ...] = ()
    """One line per effect the chain disabled (see `timbrel.plugin.chain`)."""


class Engine:
    """Runs one instrument (MIDI or live transfer) per block, with a limiter and meters.

    `sample_rate` (Hz) and `max_block` (samples) are fixed for the engine's life; blocks
    may be any size up to `max_block`. Output is stereo.
    """

    def __init__(self, sample_rate: int = 48000, max_block: int = 2048):
        self.sample_rate = int(sample_rate)
        self.max_block = int(max_block)
        self.events = EventQueue()
        self.keyboard = MidiState()
        """Held keys, pedal and controllers, replayed into each newly loaded plugin."""
        self._events = np.zeros(MAX_EVENTS_PER_BLOCK, dtype=np.int32)
        self._none = self._events[:0]
        self._bus = np.zeros((2, max_block), dtype=np.float32)
        self._fade_bus = np.zeros((2, max_block), dtype=np.float32)
        self._silence = np.zeros(max_block, dtype=np.float32)
        self._limiter = np.array([1.0, 0.0])
        """The limiter's gain, and the peak of the latest block before limiting."""
        self._release = 1.0 - math.exp(-1.0 / (LIMIT_RELEASE_S * self.sample_rate))
        self._current: Plugin | None = None
        self._incoming: Plugin | None = None
        self._outgoing: Plugin | None = None
        self.retired: list[Plugin | None] = [None] * 8
        """Plugins swapped out, parked so a control thread frees them, not the audio one."""
        self._fade_left = 0
        self._fade_len = max(1, int(CROSSFADE_S * self.sample_rate))
        self._busy_peak = 0.0
        self._cpu_peak = 0.0
        self._load_sum = 0.0
        self._cpu_ns = 0
        self.blocks = 0
        self.late_blocks_wall_clock = 0
        self.late_blocks = 0
        self.errors = 0
        self.input_peak = 0.0
        self.output_peak = 0.0
        self.last_error = ""
        self.scope = np.zeros(SCOPE_SAMPLES, dtype=np.float32)
        """The latest output (left channel), a ring buffer ending at `scope_position`, for meters and displays."""
        self.scope_position = 0
        self._last_block = 0
        self._warm_up()

    def _warm_up(self) -> None:
        """Compile (or load from cache) the engine's own kernels now, not on the first block."""
        bus = self._fade_bus[:, :16]
        crossfade(bus, bus, 0, 16)
        peak(self._silence[:16])
        for out in (np.zeros((16, 2), np.float32), np.zeros((32, 2), np.float32)[::2]):
            deliver(bus, out, np.array([1.0, 0.0]), LIMIT_CEILING, self._release, self.scope, 0)

    # Control API (any thread) ----------------------------------------------------------

    @property
    def plugin(self) -> Plugin | None:
        """The plugin now playing (or about to, once its crossfade starts)."""
        return self._incoming or self._current

    def load(self, plugin: Plugin, before_swap: Callable[[], None] | None = None) -> None:
        """Prepare `plugin` on this thread, then have the audio thread crossfade to it.

        What this thread frees (plugins swapped out earlier) and `before_swap` (a garbage
        collection, say) happen before the swap is published, so that no heavy work of this
        thread's runs beside the audio thread's costliest blocks, the crossfade's; freeing
        memory interrupts every core the process runs on.

        The switch happens at the next block boundary with a 20 ms crossfade; what was
        playing keeps playing until then. Keys held (or sustained by the pedal) and the
        controllers carry over: the new plugin starts with them (`timbrel.engine.realtime.midi_state`).
        `plugin` is an instrument, or a `timbrel.plugin.chain.Chain` that starts with one.
        """
        if plugin.kind != "instrument":
            raise TimbrelError(f"{plugin.name}: an effect cannot play alone; put it in a Chain after an instrument")
        self.collect()
        plugin.prepare(self.sample_rate, self.max_block)
        if before_swap is not None:
            before_swap()
        refill_view_cache()
        self._incoming = plugin

    def collect(self) -> None:
        """Free plugins the audio thread has swapped out (call from a control thread), each
        handing back what a later plugin can reuse (`Plugin.release`) first."""
        for i in range(len(self.retired)):
            retired, self.retired[i] = self.retired[i], None
            if retired is not None and all(retired is not p for p in (self._current, self._incoming, self._outgoing)):
                retired.release()
        collect = getattr(self._current, "collect", None)
        if collect is not None:
            collect()

    def set_parameter(self, parameter_id: str, value: float) -> float:
        """Set a parameter of the playing plugin (`KEY.PARAM` for an effect in a chain) to `value`
        in its unit; returns it. A value out of range or not finite is a one-line TimbrelError
        (`Parameter.check`), and nothing changes."""
        plugin = self.plugin
        if plugin is None:
            raise TimbrelError("no instrument loaded")
        if hasattr(plugin, "set_parameter"):
            return plugin.set_parameter(parameter_id, value)
        parameter = plugin.params.parameters[plugin.params.index(parameter_id)]
        return plugin.params.set(parameter_id, parameter.check(value))

    def status(self) -> EngineStatus:
        """Meters and counters, read without disturbing the audio thread."""
        plugin = self.plugin
        blocks = max(self.blocks, 1)
        return EngineStatus(
            sample_rate=self.sample_rate, block_size=self._last_block,
            voices=int(getattr(plugin, "active_voices", 0)), cpu_load=self._load_sum / blocks,
            peak_load=self._busy_peak, peak_cpu_load=self._cpu_peak, input_peak=self.input_peak, output_peak=self.output_peak, blocks=self.blocks,
            cpu_seconds=self._cpu_ns * 1e-9,
            late_blocks_wall_clock=self.late_blocks_wall_clock, late_blocks=self.late_blocks, errors=self.errors,
            latency_samples=plugin.latency_samples if plugin else 0, plugin=plugin.name if plugin else "",
            faults=tuple(getattr(plugin, "faults", ())),
        )

    def scope_snapshot(self, samples: int = 2048) -> np.ndarray:
        """A copy of the latest `samples` of output (left channel), oldest first (any thread;
        a block written meanwhile may tear the copy, which a display does not mind)."""
        end = self.scope_position
        return np.roll(self.scope, -end)[-samples:]

    def reset_meters(self) -> None:
        """Zero the counters and peaks (e.g. after warm-up)."""
        self.blocks = self.late_blocks_wall_clock = self.late_blocks = self.errors = 0
        self._load_sum = self._busy_peak = self._cpu_peak = 0.0
        self._cpu_ns = 0
        self.input_peak = self.output_peak = 0.0

    # Audio thread -------------------------------------------------------------------------

    def process(self, inp: np.ndarray | None, out: np.ndarray) -> None:
        """Render one block into `out` float32 `[n, channels]` from mono input `inp` `[n]` (or None).

        Each stage's time goes to `timbrel.engine.realtime.stages.TIMES`."""
        start = time.perf_counter_ns()
        start_cpu = time.thread_time_ns()
        times = TIMES
        times.begin()
        n = out.shape[0]
        self._last_block = n
        if inp is None:
            inp = self._silence[:n]
        else:
            self.input_peak = max(self.input_peak * 0.95, peak(inp))
        count = self.events.pop_into(self._events)
        events = self._events[:count]
        if count:
            self.keyboard.track(self._events, count)
        times.mark(DRAIN)
        if self._incoming is not None and self._fade_left == 0:
            self._outgoing, self._current, self._incoming = self._current, self._incoming, None
            self._current.set_fading_out(False)
            if self._outgoing is not None:
                self._outgoing.set_fading_out(True)
                self._fade_left = self._fade_len
                events = self.keyboard.replay()
            times.mark(SWAP)
        bus = self._bus[:, :n]
        self._run(self._current, inp, bus, events)
        if self._fade_left:
            self._crossfade(inp, bus, n)
            times.mark(CROSSFADE)
        self.scope_position = deliver(bus, out, self._limiter, LIMIT_CEILING, self._release, self.scope, self.scope_position)
        self.output_peak = max(self.output_peak * 0.95, self._limiter[1])
        times.mark(LIMITER)
        per_second = self.sample_rate / max(n, 1) * 1e-9
        cpu_ns = time.thread_time_ns() - start_cpu
        load = (time.perf_counter_ns() - start) * per_second
        self.blocks += 1
        self._load_sum += load
        self._cpu_ns += cpu_ns
        self._busy_peak = max(self._busy_peak, load)
        cpu_load = cpu_ns * per_second
        if cpu_load > self._cpu_peak:
            self._cpu_peak = cpu_load
        if load > 1.0:
            self.late_blocks_wall_clock += 1
            if cpu_load > 1.0:
                self.late_blocks += 1
        times.mark(METERS)
        times.end(cpu_ns)

    def _run(self, plugin: Plugin | None, inp: np.ndarray, bus: np.ndarray, events: np.ndarray) -> None:
        if plugin is None:
            bus[:] = 0.0
            return
        try:
            plugin.process(inp, bus, events)
        except Exception as err:  # the audio thread must survive any plugin fault
            bus[:] = 0.0
            self.errors += 1
            self.last_error = f"{plugin.name}: {type(err).__name__}: {err}"

    def _crossfade(self, inp: np.ndarray, bus: np.ndarray, n: int) -> None:
        """Mix the outgoing plugin in, fading out linearly while the new one fades in."""
        old = self._fade_bus[:, :n]
        self._run(self._outgoing, inp, old, self._none)
        self._fade_left -= crossfade(bus, old, self._fade_len - self._fade_left, self._fade_len)
        if self._fade_left == 0:
            self._retire(self._outgoing)
            self._outgoing = None

    def _retire(self, plugin: Plugin) -> None:
        """Park a swapped-out plugin; a control thread frees it (`collect`)."""
        park(self.retired, plugin)


def refill_view_cache() -> None:
    """Refill numpy's small cache of array shape records (a few per number of dimensions),
    which preparing a plugin uses up: an array view made on the audio thread then takes its
    record from the cache instead of from the heap (call off the audio thread)."""
    scratch = np.zeros((1, 1, 1))
    views = [scratch[(0,) * (3 - ndim)] for ndim in (1, 2, 3) for _ in range(8)]
    del views


def park(slots: list, item: object) -> None:
    """Put `item` in the first free (None) entry of the preallocated `slots`, or over the first
    when none is free: the audio thread hands what it swapped out to a control thread, which
    frees it, without allocating or freeing anything itself."""
    for i in range(len(slots)):
        if slots[i] is None:
            slots[i] = item
            return
    slots[0] = item
