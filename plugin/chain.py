"""A signal path: one instrument followed by an ordered list of effects.

    chain = Chain(MidiInstrument("violin.onnx"), [ParametricEQ(), Chorus(), Delay()])
    engine.load(chain)
    chain.insert(1, Compressor())      # while playing: fades in
    chain.bypass(2)                    # fades out, then is skipped
    chain.move(3, 0)                   # fades out, moves at a block boundary, fades in
    chain.set_parameter("delay.time_ms", 250)

Edits come from control threads and never wait on the audio thread, nor make it wait.
Each effect sits in a slot with a wet/dry gain that glides over `FADE_S`; an edit changes
the gains at once and publishes the new slot order, which the audio thread adopts at a
block boundary once every slot leaving or moving has faded to dry. Nothing is ever cut
mid-signal, so edits do not click.

Isolation: the chain checks every effect on every block. An effect that raises, returns
an array of the wrong shape, produces NaN or inf, or uses more than `budget_share` of the
block's duration in CPU time in `OVER_BUDGET_BLOCKS` blocks (net of blocks within budget)
is disabled: that block falls back to the effect's input, the slot is skipped from then
on, and `faults` holds one line naming the effect and the fault. The instrument is guarded
the same way by the engine. Formatting that line is the only allocation on a fault path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Effect, Parameter, Plugin
from timbrel.engine.realtime.kernels.mixing import all_finite, is_silent, wet_mix
from timbrel.engine.realtime.stages import EFFECT_0, MAX_EFFECTS, TIMES

FADE_S = 0.02
OVER_BUDGET_BLOCKS = 8



def slot_key(name: str, taken) -> str:
    """The key a chain gives an effect called `name`: the name, or `name-2`, `name-3`… when taken."""
    key, n = name, 2
    while key in taken:
        key, n = f"{name}-{n}", n + 1
    return key

class Slot:
    """One effect in a chain, with its wet/dry gain and health (audio-thread state)."""

    __slots__ = ("effect", "key", "mix", "target", "bypassed", "dry", "fault", "over", "reset_pending", "silent")

    def __init__(self, effect: Effect, key: str):
        self.effect = effect
        self.key = key
        self.mix = 0.0
        self.target = 1.0
        self.bypassed = False
        self.dry = np.zeros((2, 0), dtype=np.float32)
        self.fault = ""
        self.over = 0
        self.reset_pending = False
        self.silent = 0
        """Samples of digital silence the effect has had as input, in a row."""


class _Layout:
    """A slot order published to the audio thread, adopted once `waiting` slots are dry."""

    __slots__ = ("slots", "waiting", "restore")

    def __init__(self, slots: tuple[Slot, ...], waiting: tuple[Slot, ...] = (), restore: tuple[Slot, ...] = ()):
        self.slots, self.waiting, self.restore = slots, waiting, restore


class Chain(Effect):
    """An instrument (or none) followed by effects; itself a plugin the engine can load.

    With an instrument the chain is an instrument (`kind == "instrument"`): MIDI and the
    mono input go to it, and the effects process its stereo output. Without one it is an
    effect that processes the bus it is given, so chains nest and `chain(audio, rate)`
    works on a buffer as any effect does.
    """

    name = "chain"

    def __init__(self, instrument: Plugin | None = None, effects: Iterable[Effect] = (), budget_share: float = 0.25):
        super().__init__()
        if instrument is not None and instrument.kind != "instrument":
            raise TimbrelError(f"{instrument.name}: is an effect; a chain starts with an instrument (or none)")
        self.instrument = instrument
        self.kind = "instrument" if instrument is not None else "effect"
        self.name = instrument.name if instrument is not None else "chain"
        self.budget_share = float(budget_share)
        self._edit = threading.Lock()
        self._layout: list[Slot] = []
        for effect in effects:
            self._layout.append(self._new_slot(effect, fade_in=False))
        self._published = _Layout(tuple(self._layout))
        self._adopted = self._published
        self._slots = self._published.slots
        self._history: list[_Layout] = []
        self._fade_step = 1.0
        self._budget_ns_per_sample = 0.0

    # Control API (any thread but the audio one) ---------------------------------------

    @property
    def effects(self) -> list[Effect]:
        """The effects in their (latest requested) order."""
        return [slot.effect for slot in self._layout]

    @property
    def slots(self) -> list[Slot]:
        """The slots in their (latest requested) order, for UIs: key, bypass, fault."""
        return list(self._layout)

    def __len__(self) -> int:
        return len(self._layout)

    def __getitem__(self, index: int | str) -> Effect:
        return self._slot(index).effect

    @property
    def latency_samples(self) -> int:
        """The instrument's latency plus that of every effect not bypassed or disabled."""
        own = self.instrument.latency_samples if self.instrument is not None else 0
        return own + sum(s.effect.latency_samples for s in self._layout if not s.bypassed and not s.fault)

    @property
    def active_voices(self) -> int:
        return int(getattr(self.instrument, "active_voices", 0))

    @property
    def faults(self) -> list[str]:
        """One line per disabled effect: its name and the fault."""
        return [f"effect '{s.key}' disabled: {s.fault}" for s in self._layout if s.fault]

    def prepare(self, sample_rate: int, max_block: int) -> None:
        """Prepare the instrument and every effect for `max_block` samples at `sample_rate` Hz."""
        super().prepare(sample_rate, max_block)
        self._fade_step = 1.0 / max(1.0, FADE_S * self.sample_rate)
        self._budget_ns_per_sample = self.budget_share / self.sample_rate * 1e9
        if self.instrument is not None:
            self.instrument.prepare(sample_rate, max_block)
        for slot in self._layout:
            self._prepare_slot(slot)
            slot.mix = slot.target
        self._warm_up()

    @staticmethod
    def _warm_up() -> None:
        """Compile (or load) the chain's own kernels for both bus layouts now, not on the audio thread."""
        bus = np.zeros((2, 16), dtype=np.float32)
        for view in (bus, bus[:, :8]):
            wet_mix(view, view, 0.0, 1.0, 0.5)
            all_finite(view)

    def reset(self) -> None:
        if self.instrument is not None:
            self.instrument.reset()
        for slot in self._layout:
            slot.effect.reset()

    def release(self) -> None:
        if self.instrument is not None:
            self.instrument.release()
        for slot in self._layout:
            slot.effect.release()

    def set_fading_out(self, fading: bool) -> None:
        self.fading_out = fading
        if self.instrument is not None:
            self.instrument.set_fading_out(fading)

    def append(self, effect: Effect) -> str:
        """Add `effect` at the end; returns its key (for `set_parameter`)."""
        return self.insert(len(self._layout), effect)

    def insert(self, index: int, effect: Effect) -> str:
        """Prepare `effect` here and fade it in at position `index`; returns its key."""
        slot = self._new_slot(effect, fade_in=True)
        if self.sample_rate:
            self._prepare_slot(slot)
        with self._edit:
            self._layout.insert(index, slot)
            self._publish()
        return slot.key

    def remove(self, index: int | str) -> Effect:
        """Fade an effect out, then drop it from the chain; returns it."""
        with self._edit:
            slot = self._slot(index)
            slot.target = 0.0
            self._layout.remove(slot)
            self._publish(waiting=(slot,))
        return slot.effect

    def move(self, index: int | str, to: int) -> None:
        """Fade an effect out, move it to position `to`, and fade it back in."""
        with self._edit:
            slot = self._slot(index)
            self._layout.remove(slot)
            self._layout.insert(to, slot)
            restore = () if slot.bypassed or slot.fault else (slot,)
            slot.target = 0.0
            self._publish(waiting=(slot,), restore=restore)

    def bypass(self, index: int | str, bypassed: bool = True) -> None:
        """Fade an effect out and skip it (`bypassed`), or fade it back in. A bypassed effect
        is reset once silent, so it comes back without its old tail."""
        slot = self._slot(index)
        slot.bypassed = bool(bypassed)
        slot.target = 0.0 if bypassed else 1.0

    def parameter(self, parameter_id: str) -> Parameter:
        """The `Parameter` that `KEY.PARAM` (an effect's) or a bare `PARAM` (the instrument's)
        names; TimbrelError listing the ids there are when there is none."""
        return self._find(parameter_id)[1]

    def set_parameter(self, parameter_id: str, value: float) -> float:
        """Set `KEY.PARAM` on an effect, or a bare `PARAM` on the instrument, to `value` in the
        parameter's unit. A value outside its range, or not finite, is a one-line TimbrelError
        naming the range (the rule preset files and `--set` follow); returns the value set."""
        owner, parameter = self._find(parameter_id)
        return owner.params.set(parameter.id, parameter.check(value, parameter_id))

    def _find(self, parameter_id: str) -> tuple[Plugin, Parameter]:
        key, dot, name = parameter_id.rpartition(".")
        if dot:
            owner, what = self._slot(key).effect, f"effect '{key}'"
        elif self.instrument is not None:
            owner, what = self.instrument, "instrument"
        else:
            raise TimbrelError(f"no parameter '{parameter_id}': name an effect, as in 'eq.{parameter_id}'")
        for parameter in owner.params.parameters:
            if parameter.id == name:
                return owner, parameter
        known = ", ".join(p.id for p in owner.params.parameters)
        raise TimbrelError(f"no parameter '{parameter_id}' (the {what} has: {known})")

    def describe(self) -> dict:
        """JSON-ready state for control surfaces: the instrument's parameters and each effect's
        key, type, bypass, fault and parameters, every parameter with its range, unit and value."""
        def parameters(plugin: Plugin) -> list[dict]:
            values = plugin.params.as_dict()
            return [p.describe() | {"value": values[p.id]} for p in plugin.parameters]

        return {
            "instrument": None if self.instrument is None else parameters(self.instrument),
            "effects": [{"key": s.key, "type": s.effect.name, "bypassed": s.bypassed, "fault": s.fault,
                         "parameters": parameters(s.effect)} for s in self._layout],
            "latency_samples": self.latency_samples,
        }

    def collect(self) -> None:
        """Drop layouts the audio thread has moved past (freeing removed effects here, not there)."""
        with self._edit:
            if self._adopted is self._published:
                self._history.clear()

    def _slot(self, index: int | str) -> Slot:
        if isinstance(index, str):
            for slot in self._layout:
                if slot.key == index:
                    return slot
            known = ", ".join(s.key for s in self._layout) or "none"
            raise TimbrelError(f"no effect '{index}' in the chain (effects: {known})")
        try:
            return self._layout[index]
        except IndexError:
            raise TimbrelError(f"no effect at position {index} (the chain has {len(self._layout)})") from None

    def _new_slot(self, effect: Effect, fade_in: bool) -> Slot:
        if not isinstance(effect, Plugin) or effect.kind != "effect":
            raise TimbrelError(f"{getattr(effect, 'name', effect)!r}: not an effect")
        slot = Slot(effect, slot_key(effect.name, {s.key for s in self._layout}))
        slot.mix = 0.0 if fade_in else 1.0
        return slot

    def _prepare_slot(self, slot: Slot) -> None:
        slot.effect.prepare(self.sample_rate, self.max_block)
        slot.dry = np.zeros((2, self.max_block), dtype=np.float32)

    def _publish(self, waiting: tuple[Slot, ...] = (), restore: tuple[Slot, ...] = ()) -> None:
        """Hand the audio thread the new order (caller holds `_edit`)."""
        pending = self._published
        if pending is not self._adopted:
            waiting = tuple(pending.waiting) + waiting
            restore = tuple(s for s in pending.restore if s in self._layout) + restore
        self._history.append(self._published)
        self._published = _Layout(tuple(self._layout), waiting, restore)

    # Audio thread -------------------------------------------------------------------------

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        """Run the instrument into `out` `[2, n]` (or take `out` as given), then each effect in order."""
        layout = self._published
        if layout is not self._adopted:
            self._adopt(layout)
        if self.instrument is not None:
            self.instrument.process(inp, out, events)
        n = out.shape[1]
        times = TIMES
        for index, slot in enumerate(self._slots):
            if slot.fault:
                continue
            if slot.mix == 0.0 and slot.target == 0.0:
                if slot.reset_pending:
                    slot.effect.reset()
                    slot.reset_pending = False
                continue
            if is_silent(out):
                tail_s = slot.effect.tail_s
                if tail_s is not None and slot.silent >= tail_s * self.sample_rate:
                    continue
                slot.silent += n
            else:
                slot.silent = 0
            self._run(slot, inp, out, events, n)
            times.mark(EFFECT_0 + min(index, MAX_EFFECTS - 1))

    def _adopt(self, layout: _Layout) -> None:
        for slot in layout.waiting:
            if slot.mix != 0.0 and not slot.fault:
                return
        for slot in layout.restore:
            if not slot.bypassed:
                slot.target = 1.0
        self._slots = layout.slots
        self._adopted = layout

    def _run(self, slot: Slot, inp: np.ndarray, out: np.ndarray, events: np.ndarray, n: int) -> None:
        dry = slot.dry[:, :n]
        dry[:] = out
        start = time.thread_time_ns()
        try:
            result = slot.effect.process(inp, out, events)
        except Exception as err:  # a third-party effect must not take the host down
            self._disable(slot, out, dry, f"raised {type(err).__name__}: {err}")
            return
        elapsed = time.thread_time_ns() - start
        if result is not None:
            if not isinstance(result, np.ndarray) or result.shape != out.shape:
                shape = list(result.shape) if isinstance(result, np.ndarray) else type(result).__name__
                self._disable(slot, out, dry, f"returned {shape} instead of [2, {n}]")
                return
            out[:] = result
        if not all_finite(out):
            self._disable(slot, out, dry, "produced NaN or inf")
            return
        if elapsed > n * self._budget_ns_per_sample:
            slot.over += 1
            if slot.over >= OVER_BUDGET_BLOCKS:
                self._disable(slot, out, dry, f"over its time budget ({elapsed / 1e6:.2f} ms of CPU in a "
                              f"{n / self.sample_rate * 1e3:.2f} ms block, {OVER_BUDGET_BLOCKS} times)")
                return
        elif slot.over:
            slot.over -= 1
        if slot.mix != 1.0 or slot.target != 1.0:
            slot.mix = wet_mix(out, dry, slot.mix, slot.target, self._fade_step)
            if slot.mix == 0.0 and slot.bypassed:
                slot.reset_pending = True

    @staticmethod
    def _disable(slot: Slot, out: np.ndarray, dry: np.ndarray, fault: str) -> None:
        out[:] = dry
        slot.mix = slot.target = 0.0
        slot.fault = fault

    def __call__(self, audio: np.ndarray, sample_rate: int, block: int = 512, events: np.ndarray | None = None) -> np.ndarray:
        """Offline: render (with an instrument) or process (without one) a whole buffer; stereo `[2, samples]`."""
        call = Plugin.__call__ if self.instrument is not None else Effect.__call__
        return call(self, audio, sample_rate, block, events)
