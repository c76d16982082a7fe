"""The plugin interface: what every instrument and effect in timbrel implements.

The lifecycle follows JUCE's AudioProcessor:

- `prepare(sample_rate, max_block)` runs off the audio thread and allocates everything;
- `process(inp, out, events)` runs on the audio thread, once per block, and must not
  allocate arrays, lock, log, touch files or raise;
- `reset()` returns to silence (off the audio thread, or between blocks);
- `latency_samples` says how late the plugin's output is.

Parameters are declared up front with an id, a range, a unit, a scale and a smoothing
time. Any thread may set them (`plugin.params.set("gain_db", -6)`): a set is one float
written into an array, which is atomic, and the audio thread glides towards it, so
automation never clicks and never waits.

A plugin is also a plain Python callable in the spirit of pedalboard:
`plugin(audio, sample_rate)` prepares it and runs a whole buffer through it in blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.engine.realtime.kernels.mixing import glide


@dataclass(frozen=True)
class Parameter:
    """One automatable value. `scale` is "linear" or "log" (how a knob sweeps it).

    `choices` turns it into a switch: the value is an index into the names.
    `smoothing_ms` is the time constant of the glide towards a new value (0: jump).
    """

    id: str
    name: str
    unit: str
    minimum: float
    maximum: float
    default: float
    scale: str = "linear"
    smoothing_ms: float = 20.0
    choices: tuple[str, ...] = ()
    group: str = ""
    """Where a control surface shows it: with the plugin's main controls (""), or under this heading."""

    def __post_init__(self) -> None:
        if not self.minimum <= self.default <= self.maximum:
            raise ValueError(f"parameter {self.id}: default {self.default} outside [{self.minimum}, {self.maximum}]")
        if self.scale == "log" and self.minimum <= 0:
            raise ValueError(f"parameter {self.id}: a log scale needs a positive minimum")

    def range_text(self) -> str:
        """The range as people read it: "-24 to 12 dB"."""
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.minimum:g} to {self.maximum:g}{unit}"

    def fault(self, value: float) -> str | None:
        """What is wrong with `value` for this parameter ("nan is not a finite number (0 to 1)",
        "2 is out of range (0 to 1)", a switch's fractional index), or None when it is usable.
        The one rule for preset files, `--set`, the control surface and `Chain.set_parameter`."""
        if not math.isfinite(value):
            return f"{value:g} is not a finite number ({self.range_text()})"
        if not self.minimum <= value <= self.maximum:
            return f"{value:g} is out of range ({self.range_text()})"
        if self.choices and value != round(value):
            return f"{value:g}: expected one of {', '.join(self.choices)} (or 0 to {len(self.choices) - 1})"
        return None

    def check(self, value: float, name: str | None = None) -> float:
        """`value` as a float if usable; else TimbrelError "NAME = fault" (NAME: the id)."""
        value = float(value)
        fault = self.fault(value)
        if fault is not None:
            raise TimbrelError(f"{name or self.id} = {fault}")
        return value

    def clamp(self, value: float) -> float:
        """`value` limited to the range (rounded to a choice index for switches)."""
        value = min(self.maximum, max(self.minimum, float(value)))
        return float(round(value)) if self.choices else value

    def to_normalized(self, value: float) -> float:
        """Position 0…1 of `value` on a knob with this parameter's scale."""
        value = self.clamp(value)
        if self.maximum == self.minimum:
            return 0.0
        if self.scale == "log":
            return math.log(value / self.minimum) / math.log(self.maximum / self.minimum)
        return (value - self.minimum) / (self.maximum - self.minimum)

    def from_normalized(self, position: float) -> float:
        """The value at knob position 0…1."""
        position = min(1.0, max(0.0, float(position)))
        if self.scale == "log":
            return self.clamp(self.minimum * (self.maximum / self.minimum) ** position)
        return self.clamp(self.minimum + position * (self.maximum - self.minimum))

    def describe(self) -> dict:
        """A JSON-ready description for UIs and presets."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"choices": list(self.choices)}


class ParameterBank:
    """Current values of a plugin's parameters.

    `targets` is written by any thread through `set`; `values` is owned by the audio
    thread, which calls `advance(seconds)` once per block to glide towards the targets.
    Read `values` in `process`, `targets` anywhere else.
    """

    def __init__(self, parameters: tuple[Parameter, ...]):
        self.parameters = tuple(parameters)
        self._index = {p.id: i for i, p in enumerate(self.parameters)}
        if len(self._index) != len(self.parameters):
            raise ValueError("parameter ids must be unique")
        self.targets = np.array([p.default for p in self.parameters], dtype=np.float64)
        self.values = self.targets.copy()
        self._tau = np.array([max(p.smoothing_ms / 1000, 1e-9) for p in self.parameters], dtype=np.float64)
        glide(self.values, self.targets, self._tau, 0.0)  # compiled (or loaded) here, not on the audio thread

    def index(self, parameter_id: str) -> int:
        """Position of a parameter in `values` and `targets`."""
        try:
            return self._index[parameter_id]
        except KeyError:
            known = ", ".join(self._index)
            raise TimbrelError(f"no parameter '{parameter_id}' (this plugin has: {known})") from None

    def set(self, parameter_id: str, value: float) -> float:
        """Set a target from any thread; returns the value after clamping to the range."""
        i = self.index(parameter_id)
        value = self.parameters[i].clamp(value)
        self.targets[i] = value
        return value

    def get(self, parameter_id: str) -> float:
        """The target value of a parameter (what was last set)."""
        return float(self.targets[self.index(parameter_id)])

    def snap(self) -> None:
        """Jump every value to its target (before playing, or after a preset load)."""
        self.values[:] = self.targets

    def advance(self, seconds: float) -> None:
        """Audio thread: glide each value towards its target over `seconds` of audio."""
        glide(self.values, self.targets, self._tau, seconds)

    def as_dict(self) -> dict[str, float]:
        """Targets by id, for saving presets and showing UIs."""
        return {p.id: float(self.targets[i]) for i, p in enumerate(self.parameters)}


class Plugin:
    """Base class of instruments and effects. Subclasses declare `parameters` and override
    `prepare`, `process` and `reset`."""

    name: str = "plugin"
    kind: str = "instrument"
    parameters: tuple[Parameter, ...] = ()

    def __init__(self) -> None:
        self.params = ParameterBank(type(self).parameters)
        self.sample_rate = 0
        self.max_block = 0
        self.fading_out = False
        """Set while the engine crossfades this plugin out after a switch (`set_fading_out`)."""

    @property
    def latency_samples(self) -> int:
        """How many samples late the output is, relative to the input or the MIDI that caused it."""
        return 0

    def prepare(self, sample_rate: int, max_block: int) -> None:
        """Allocate for blocks of up to `max_block` samples at `sample_rate` Hz (not the audio thread)."""
        self.sample_rate = int(sample_rate)
        self.max_block = int(max_block)
        self.params.snap()

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        """Render one block. `inp`: mono input float32 `[n]`; `out`: stereo bus float32 `[2, n]`,
        which an instrument overwrites and an effect transforms in place; `events`: packed MIDI
        messages (`timbrel.engine.realtime.events.parse_message`) that arrived since the last block."""
        raise NotImplementedError

    def reset(self) -> None:
        """Return to silence: voices off, tails cleared."""

    def release(self) -> None:
        """Hand back what a later plugin can reuse (an onnxruntime runner, say). A control thread
        calls it once the engine has swapped this plugin out and let go of it; the plugin plays
        again only after another `prepare`."""

    def set_fading_out(self, fading: bool) -> None:
        """Audio thread: the engine is crossfading this plugin out (True) or playing it (False).
        An instrument fading out may hold its last control frame instead of running its model:
        what it plays is on its way to silence within the crossfade."""
        self.fading_out = fading

    def __call__(self, audio: np.ndarray, sample_rate: int, block: int = 512, events: np.ndarray | None = None) -> np.ndarray:
        """Run a whole mono buffer `[samples]` through the plugin offline, in blocks of `block`.

        Returns stereo float32 `[2, samples]`. An instrument ignores the input's values (pass
        zeros of the length to render); `events` (packed MIDI) arrive with the first block.
        """
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        self.prepare(sample_rate, block)
        out = np.zeros((2, audio.size), dtype=np.float32)
        pending = np.asarray(events if events is not None else [], dtype=np.int32)
        none = np.zeros(0, dtype=np.int32)
        for start in range(0, audio.size, block):
            stop = min(audio.size, start + block)
            bus = np.zeros((2, stop - start), dtype=np.float32)
            self.process(audio[start:stop], bus, pending if start == 0 else none)
            out[:, start:stop] = bus
        return out


class Effect(Plugin):
    """Base class of effects: `process` transforms the stereo bus `out` `[2, n]` in place.

    An effect may instead return a new float32 array `[2, n]`, which the host copies into
    the bus (allocating on the audio thread is then the effect's own cost). The host checks
    what comes back: a wrong shape, or NaN or inf, disables the effect (see `timbrel.plugin.chain`).
    `inp` is the engine's mono input, which most effects ignore.
    """

    name = "effect"
    kind = "effect"

    @property
    def effect_type(self) -> str:
        """The type a preset stores this effect by: `create_effect(effect.effect_type)` makes
        another. Its `name` for built-in and packaged effects; "lv2:URI" for an LV2 plugin."""
        return self.name

    @property
    def tail_s(self) -> float | None:
        """How long (s) the effect may still sound after its input falls silent, at the current
        settings: once its input has been digital silence that long, the host skips it until
        sound comes back (its output would be silence, to below -120 dB). None: never skipped,
        for effects that make sound from nothing; third-party effects are None unless they say."""
        return None

    def warm_up(self) -> None:
        """Run a tiny contiguous bus and a strided view of one through the effect, so numba has
        compiled (or loaded) both layouts before the first real block; then reset. Call at the
        end of `prepare`."""
        for bus in (np.zeros((2, 8), dtype=np.float32), np.zeros((2, 16), dtype=np.float32)[:, :8]):
            self.process(bus[0], bus, np.zeros(0, dtype=np.int32))
        self.reset()

    def __call__(self, audio: np.ndarray, sample_rate: int, block: int = 512, events: np.ndarray | None = None) -> np.ndarray:
        """Run a whole buffer, mono `[samples]` or stereo `[2, samples]`, through the effect in blocks.

        Returns stereo float32 `[2, samples]` (a mono input feeds both channels).
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = np.stack([audio, audio])
        if audio.ndim != 2 or audio.shape[0] != 2:
            raise ValueError(f"expected audio shaped [samples] or [2, samples], got {list(audio.shape)}")
        self.prepare(sample_rate, block)
        out = np.array(audio, dtype=np.float32, order="C")
        bus = np.zeros((2, block), dtype=np.float32)
        silence = np.zeros(block, dtype=np.float32)
        none = np.zeros(0, dtype=np.int32)
        for start in range(0, out.shape[1], block):
            stop = min(out.shape[1], start + block)
            view = bus[:, : stop - start]
            view[:] = out[:, start:stop]
            result = self.process(silence[: stop - start], view, none)
            out[:, start:stop] = view if result is None else result
        return out
