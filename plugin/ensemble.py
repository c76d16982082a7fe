"""An ensemble: up to 16 parts, each a preset's chain, played at once from MIDI.

    ensemble = Ensemble([Part(strings_chain, midi_channel=1), Part(brass_chain, midi_channel=2)])
    engine.load(ensemble)
    ensemble.set_parameter("part2.volume_db", -6)
    ensemble.switch_part(1, horn_chain)     # the other parts play on untouched

Each part has a MIDI channel (0: all), a key range (splits), a velocity range (layers), a
transpose, a volume, a pan, mute and solo, sends to the shared reverb and delay buses, and
its preset's own effects chain after its instrument.

The voices of every part live in one `EnsembleVoices`: per block, one numba call routes the
MIDI (`ensemble_kernels.route_events`), one call per part and hop advances that part's voices,
one onnxruntime call runs every voice of every model of one size (`stacked_models`; a model
alone in its size runs its voices in a call of its own), and one call of the fused
synth kernel renders all of them, each part into its own mix row. Each part then plays its own
learned reverb and effects, and one call mixes the parts into the master and send buses.

Switching one part's preset (`switch_part`) prepares the new chain off the audio thread; at a
block boundary the part's voices fade over one hop, the part's held keys start again in the
new sound, and the part's old and new reverb and effects crossfade over `CROSSFADE_S`. The
other parts are not touched.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Effect, Parameter, ParameterBank, Plugin
from timbrel.engine.realtime.events import CONTROL_CHANGE
from timbrel.engine.realtime.host import park, refill_view_cache
from timbrel.engine.realtime.kernels.mixing import crossfade
from timbrel.engine.realtime.midi_state import MidiState
from timbrel.engine.realtime.stages import MODEL, TIMES, VOICES
from timbrel.plugin import ensemble_kernels as ek
from timbrel.plugin import mpe
from timbrel.plugin import voice_allocation as va
from timbrel.plugin.chain import Chain
from timbrel.plugin.ensemble_voices import MAX_RUNNERS, EnsembleVoices
from timbrel.plugin.instrument import MidiInstrument, clear_voice_state
from timbrel.plugin.model_synth import ReverbStage, render_frames

MAX_PARTS = 16
CROSSFADE_S = 0.02
MAX_EVENTS_PER_PART = 1024
PART_PARAMETERS = (
    Parameter("midi_channel", "MIDI channel", "", 0.0, 16.0, 0.0, smoothing_ms=0),
    Parameter("key_low", "Lowest key", "", 0.0, 127.0, 0.0, smoothing_ms=0),
    Parameter("key_high", "Highest key", "", 0.0, 127.0, 127.0, smoothing_ms=0),
    Parameter("velocity_low", "Lowest velocity", "", 1.0, 127.0, 1.0, smoothing_ms=0),
    Parameter("velocity_high", "Highest velocity", "", 1.0, 127.0, 127.0, smoothing_ms=0),
    Parameter("transpose", "Transpose", "st", -48.0, 48.0, 0.0, smoothing_ms=0),
    Parameter("volume_db", "Volume", "dB", -60.0, 12.0, 0.0),
    Parameter("pan", "Pan", "", -1.0, 1.0, 0.0),
    Parameter("mute", "Mute", "", 0.0, 1.0, 0.0, smoothing_ms=0, choices=("off", "on")),
    Parameter("solo", "Solo", "", 0.0, 1.0, 0.0, smoothing_ms=0, choices=("off", "on")),
    Parameter("reverb_send", "Reverb send", "", 0.0, 1.0, 0.0),
    Parameter("delay_send", "Delay send", "", 0.0, 1.0, 0.0),
)
"""A part's own settings, in the order of `ensemble_kernels.PART_FIELDS`. Keys and velocities
are inclusive MIDI numbers; `midi_channel` 0 hears every channel; `transpose` is whole semitones."""


class PartInstrument(MidiInstrument):
    """A `MidiInstrument` whose voices live in an ensemble's `EnsembleVoices`: the ensemble
    applies its MIDI and runs its frames; `process` plays its learned reverb and gain from the
    part's row of the ensemble's mix."""

    name = "part-instrument"

    def __init__(self, source: MidiInstrument):
        super().__init__(source.model, source.voices, source.seed)
        self.params.targets[:] = source.params.targets
        self.params.snap()
        self._learn[:] = source._learn
        self._slot: tuple[EnsembleVoices, int, np.ndarray] | None = None

    def place(self, voices: EnsembleVoices, part: int, mix: np.ndarray) -> None:
        """Play part `part`'s voices of `voices`, whose mono mix is the row `mix` `[max_block]`."""
        self.voices = int(voices.offsets[part + 1] - voices.offsets[part])
        self._slot = (voices, part, mix)

    def prepare(self, sample_rate: int, max_block: int) -> None:
        if self._slot is None:
            raise TimbrelError(f"{self.model.info.name}: a part instrument plays only inside an ensemble")
        Plugin.prepare(self, sample_rate, max_block)
        voices, part, self._mix = self._slot
        self.stage = ReverbStage(self.model, sample_rate, max_block)
        self.attach(voices.state(part), voices.voice_arrays(part), voices.hop_samples)

    def continue_clock(self, previous: MidiInstrument) -> None:
        """Count notes on from where `previous` (this part's former instrument) stopped: a
        voice's note age is how note expression tells a new note from the one it replaces."""
        self._counters[va.CLOCK] = previous._counters[va.CLOCK]

    def reset(self) -> None:
        """The part's own state (its voices are the ensemble's to clear): controllers, MPE zones,
        counters, its reverb."""
        self.stage.reset()
        self._controls[:] = 0.0
        self._counters[:] = 0
        mpe.clear(self._zones, self._channels)
        self._gain = 10.0 ** (self.params.values[self.params.index("gain_db")] / 20.0)
        self.active_voices = 0

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        self.finish_block(self._mix[: out.shape[1]], out)


class Part:
    """One part: a preset's chain (a `MidiInstrument` and its effects), the preset's `name`,
    and its settings (`PART_PARAMETERS` ids → values; the rest keep their defaults)."""

    def __init__(self, chain: Chain, name: str = "", **settings: float):
        if not isinstance(chain.instrument, MidiInstrument):
            raise TimbrelError(f"{name or chain.name}: an ensemble part plays a MIDI instrument")
        self.name = name or chain.instrument.model.info.name
        self.params = ParameterBank(PART_PARAMETERS)
        for key, value in settings.items():
            parameter = self.params.parameters[self.params.index(key)]
            self.params.set(key, parameter.check(value, f"part '{self.name}'"))
        self.params.snap()
        self.chain = chain
        self.runner = 0
        self.incoming: tuple[Chain, int, str] | None = None
        """The latest switch a control thread asked for; a newer one replaces it until taken."""
        self.taken: tuple[Chain, int, str] | None = None
        """The switch the audio thread took last: `incoming` is pending while it is not this one.
        Only control threads write `incoming` and only the audio thread writes `taken`, so a
        switch asked for while another is pending is never lost, and one replaced before it was
        taken is freed by the control thread that replaced it."""
        self.outgoing: Chain | None = None
        self.fade_left = 0

    @property
    def playing(self) -> str:
        """The preset the part plays, or is about to once a pending switch is taken."""
        incoming = self.incoming
        return incoming[2] if incoming is not None and incoming is not self.taken else self.name


class Ensemble(Plugin):
    """Parts played at once; itself an instrument the engine loads like a chain.

    `reverb` and `delay` are the effects of the shared send buses (None: that bus is silent).
    Voices per part are the parts' instruments' `voices`, fixed for the ensemble's life.
    """

    name = "ensemble"
    kind = "instrument"

    def __init__(self, parts: Sequence[Part], reverb: Effect | None = None, delay: Effect | None = None, seed: int = 0):
        super().__init__()
        if not 1 <= len(parts) <= MAX_PARTS:
            raise TimbrelError(f"an ensemble has 1 to {MAX_PARTS} parts, not {len(parts)}")
        self.parts = list(parts)
        for part in self.parts:
            part.chain.instrument = PartInstrument(part.chain.instrument)
        self.sends = (Chain(None, [reverb] if reverb is not None else []), Chain(None, [delay] if delay is not None else []))
        self.seed = int(seed)
        self.retired: list[Chain | None] = [None] * MAX_PARTS
        """Part chains swapped out, parked so a control thread frees them, not the audio one."""
        self._switching = threading.Lock()
        self.voices: EnsembleVoices | None = None

    # Control API (any thread but the audio one) ---------------------------------------

    @property
    def active_voices(self) -> int:
        return sum(part.chain.active_voices for part in self.parts)

    @property
    def latency_samples(self) -> int:
        return max(part.chain.latency_samples for part in self.parts)

    @property
    def faults(self) -> list[str]:
        """One line per effect disabled in any part or send bus."""
        lines = [f"part {i + 1} ({part.name}): {fault}" for i, part in enumerate(self.parts) for fault in part.chain.faults]
        return lines + [*self.sends[0].faults, *self.sends[1].faults]

    @property
    def peaks(self) -> list[float]:
        """Each part's recent output peak after its volume and pan (linear, decaying per block)."""
        return [float(x) for x in self._peaks] if self.sample_rate else [0.0] * len(self.parts)

    def part_index(self, part: int | str) -> int:
        """A part by number (0-based) or by name (case-insensitive); a one-line error if none."""
        if isinstance(part, int) and 0 <= part < len(self.parts):
            return part
        if isinstance(part, str):
            for i, p in enumerate(self.parts):
                if p.name.casefold() == part.casefold():
                    return i
        raise TimbrelError(f"no part {part!r} (this ensemble has {len(self.parts)}: "
                           f"{', '.join(p.name for p in self.parts)})")

    def parameter(self, parameter_id: str) -> Parameter:
        """The `Parameter` that `partN.PARAM`, `partN.KEY.PARAM`, `reverb.PARAM` or `delay.PARAM` names
        (`set_parameter`); a one-line TimbrelError when there is none."""
        owner, rest = self._owner(parameter_id)
        if isinstance(owner, Part):
            return owner.params.parameters[owner.params.index(rest)]
        return owner.parameter(rest)

    def _owner(self, parameter_id: str) -> tuple[Part | Chain, str]:
        """Who holds `parameter_id`: a part (its own setting), a part's chain, or a send bus's
        chain, and the id as that owner names it."""
        head, _, rest = parameter_id.partition(".")
        if head in ("reverb", "delay") and rest:
            bus = self.sends[0 if head == "reverb" else 1]
            if not len(bus):
                raise TimbrelError(f"this ensemble has no {head} bus")
            return bus, f"{bus.slots[0].key}.{rest}"
        if not head.startswith("part") or not head[4:].isdigit() or not rest:
            raise TimbrelError(f"'{parameter_id}': an ensemble's parameters are partN.PARAM, reverb.PARAM or delay.PARAM")
        part = self.parts[self.part_index(int(head[4:]) - 1)]
        return (part, rest) if rest in part.params._index else (part.chain, rest)

    def set_parameter(self, parameter_id: str, value: float) -> float:
        """`partN.PARAM` (N from 1) sets a part's setting (`PART_PARAMETERS`), or a parameter of its
        chain (`partN.gain_db`, `partN.KEY.PARAM`); `reverb.PARAM` and `delay.PARAM` set the send
        buses' effects. Values are checked (`Parameter.check`); returns the value set."""
        owner, rest = self._owner(parameter_id)
        if isinstance(owner, Part):
            parameter = owner.params.parameters[owner.params.index(rest)]
            return owner.params.set(rest, parameter.check(value, parameter_id))
        return owner.set_parameter(rest, value)

    def describe(self) -> dict:
        """JSON-ready state for control surfaces: per part its number, preset, sounding voices and
        settings (ids `partN.PARAM`), each with its range, unit and value."""
        parts = []
        for i, part in enumerate(self.parts):
            values = part.params.as_dict()
            parts.append({"part": i + 1, "name": part.name, "voices": part.chain.active_voices,
                          "parameters": [p.describe() | {"id": f"part{i + 1}.{p.id}", "value": values[p.id]}
                                         for p in PART_PARAMETERS]})
        return {"instrument": None, "effects": [], "parts": parts, "latency_samples": self.latency_samples}

    def switch_part(self, part: int | str, chain: Chain, name: str = "") -> None:
        """Have part `part` play `chain` (a MIDI instrument and its effects), prepared here; the
        audio thread takes it at a block boundary. The part keeps its settings and voice count;
        held keys sound again in the new preset, and the other parts play on untouched."""
        index = self.part_index(part)
        if not isinstance(chain.instrument, MidiInstrument):
            raise TimbrelError(f"{name or chain.name}: an ensemble part plays a MIDI instrument")
        with self._switching:
            target = self.parts[index]
            chain.instrument = PartInstrument(chain.instrument)
            if self.voices is None:
                target.chain, target.name = chain, name or chain.instrument.model.info.name
                return
            self.voices.check(chain.instrument.model, index)
            self.collect()
            runner = self.voices.runner_for(chain.instrument.model)
            chain.instrument.place(self.voices, index, self._mix[index])
            chain.prepare(self.sample_rate, self.max_block)
            refill_view_cache()
            target.incoming = (chain, runner, name or chain.instrument.model.info.name)

    def release(self) -> None:
        for part in self.parts:
            part.chain.release()
        voices = getattr(self, "voices", None)
        if voices is not None:
            voices.release()

    def collect(self) -> None:
        """Free part chains the audio thread has swapped out (call from a control thread)."""
        for i in range(len(self.retired)):
            self.retired[i] = None

    def status(self) -> list[dict]:
        """Per part, for displays: name, channel, key and velocity ranges, volume, mute, solo,
        sounding voices and peak (linear)."""
        peaks = self.peaks
        rows = []
        for i, part in enumerate(self.parts):
            row = {"part": i + 1, "name": part.name, "voices": part.chain.active_voices, "peak": peaks[i]}
            row.update(part.params.as_dict())
            rows.append(row)
        return rows

    # Set-up ------------------------------------------------------------------------------

    def prepare(self, sample_rate: int, max_block: int) -> None:
        """Allocate the shared voices, every part's chain and the send buses (not the audio thread)."""
        super().prepare(sample_rate, max_block)
        instruments = [part.chain.instrument for part in self.parts]
        self.voices = voices = EnsembleVoices([i.model for i in instruments], [i.voices for i in instruments],
                                              sample_rate, self.seed)
        count = len(self.parts)
        self._mix = np.zeros((count, max_block))
        self._buses = np.zeros((count, 2, max_block), dtype=np.float32)
        self.stems = np.zeros((count, 2, max_block), dtype=np.float32)
        """Each part's share of the latest block's output `[parts, 2, n]`, after its volume and pan."""
        self._old = np.zeros((2, max_block), dtype=np.float32)
        self._send_buses = np.zeros((2, 2, max_block), dtype=np.float32)
        self._table = np.zeros((count, len(ek.PART_FIELDS)))
        self._live = np.ones(count, dtype=np.bool_)
        self._routed = np.zeros((count, MAX_EVENTS_PER_PART), dtype=np.int32)
        self._counts = np.zeros(count, dtype=np.int64)
        self._sounding = np.zeros((count, 16, 128), dtype=np.int64)
        self._only = np.zeros(count, dtype=np.bool_)
        self._replay_counts = np.zeros(count, dtype=np.int64)
        self._replay_routed = np.zeros((count, MAX_EVENTS_PER_PART), dtype=np.int32)
        self._gains = np.zeros((count, ek.GAINS))
        self._previous = np.zeros((count, ek.GAINS))
        self._peaks = np.zeros(count)
        self._batches = np.zeros(MAX_RUNNERS, dtype=np.int64)
        self._none = np.zeros(0, dtype=np.int32)
        self._panic = np.array([CONTROL_CHANGE | 120 << 8], dtype=np.int32)
        self._fade_len = max(1, int(CROSSFADE_S * sample_rate))
        self._view_size = -1
        self.keyboard = MidiState()
        """Every key and controller the ensemble has heard, replayed into a part that switches preset."""
        for p, part in enumerate(self.parts):
            part.chain.instrument.place(voices, p, self._mix[p])
            part.runner = voices.runner_for(part.chain.instrument.model)
            part.chain.prepare(sample_rate, max_block)
        for bus in self.sends:
            bus.prepare(sample_rate, max_block)
        self._warm_up()

    def _warm_up(self) -> None:
        """A note through every part, then silence again, on a whole bus and on a view of a wider
        one (the engine's), whose layouts differ: numba compiles (or loads) for both and for
        the shared arrays' layouts, and every code path runs once, before any audio block."""
        m = min(self.max_block, 64)
        wide = np.zeros((2, 2 * m), dtype=np.float32)
        silence = np.zeros(m, dtype=np.float32)
        hop = self.voices.hop_samples
        notes = []
        for part in self.parts:
            channel, low, high = part.params.values[:3]
            notes.append(0x90 | max(int(channel) - 1, 0) | int((low + high) / 2) << 8 | 100 << 16)
        on = np.array(notes, dtype=np.int32)
        off = on & ~np.int32(0xFF0000)
        for out in (wide[:, :m].copy(), wide[:, :m]):
            for i in range(2 * hop // m + 2):
                self.process(silence, out, on if i == 0 else off if i == 1 else self._none)
            self.reset()

    def reset(self) -> None:
        """Every voice silent, every part's tails and the send buses cleared."""
        voices = self.voices
        voices.bank.reset()
        voices.gru[:] = 0.0
        clear_voice_state(voices.ints, voices.floats, voices.notes)
        for part in self.parts:
            part.chain.reset()
        for bus in self.sends:
            bus.reset()
        self._sounding[:] = 0
        self._previous[:] = 0.0
        self._peaks[:] = 0.0
        self.keyboard = MidiState()

    # Audio thread ------------------------------------------------------------------------

    def _views(self, n: int) -> tuple:
        """The block's views of the mix, the part and send buses and the crossfade bus, made
        again only when the block size changes, so that a steady stream of blocks makes none."""
        if n != self._view_size:
            self._view_size = n
            self._block_views = (self._mix[:, :n], [self._buses[p, :, :n] for p in range(len(self.parts))],
                                 self._old[:, :n], self._send_buses[0, :, :n], self._send_buses[1, :, :n])
        return self._block_views

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        n = out.shape[1]
        parts = self.parts
        mix, buses, old, reverb, delay = self._views(n)
        if events.shape[0]:
            self.keyboard.track(events, events.shape[0])
        seconds = n / self.sample_rate
        for p, part in enumerate(parts):
            self._live[p] = True
            if part.incoming is not part.taken and part.fade_left == 0:
                self._take(p, part)
            part.params.advance(seconds)
            self._table[p] = part.params.values
        ek.route_events(events, self._table, self._live, self._routed, self._counts, self._sounding)
        for p, part in enumerate(parts):
            part.chain.instrument.begin_block(n, self._routed[p, : self._counts[p]])
        mix[:] = 0.0
        voices = self.voices
        if va.any_voice(voices.ints):
            render_frames(voices.bank, mix, voices.frame, self._frame)
        else:
            voices.bank.advance_silent(n)
        for p, part in enumerate(parts):
            bus = buses[p]
            part.chain.process(inp, bus, self._none)
            if part.fade_left:
                part.outgoing.process(inp, old, self._none)
                part.fade_left -= crossfade(bus, old, self._fade_len - part.fade_left, self._fade_len)
                if part.fade_left == 0:
                    park(self.retired, part.outgoing)
                    part.outgoing = None
        ek.part_gains(self._table, self._live, self._gains)
        ek.mix_parts(self._buses, n, self._previous, self._gains, out, reverb, delay, self._peaks, self.stems)
        for bus, signal in zip(self.sends, (reverb, delay)):
            if len(bus):
                bus.process(inp, signal, self._none)
                np.add(out, signal, out=out)

    def _frame(self, offset: int) -> None:
        """A hop boundary: every part advances its voices, then each model runs once for all of
        the voices playing it, across parts (fading out: the last frame held)."""
        if self.fading_out:
            return
        voices = self.voices
        runners = voices.runners
        rows = voices.order_rows
        batches = self._batches
        batches[:] = 0
        for p, part in enumerate(self.parts):
            instrument = part.chain.instrument
            count = instrument.frame_voices()
            if count:
                r = part.runner
                batches[r] = ek.append_voices(rows[r], batches[r], instrument.order, count, voices.offsets[p])
        TIMES.mark(VOICES)
        for stack in voices.stacks:
            stack.run(voices.orders, batches, voices.f0, voices.loudness, voices.scale, voices.tilt, voices.noise_gain,
                      voices.gru, voices.frame)
        for r in range(len(runners)):
            if batches[r]:
                runners[r].run(rows[r], batches[r], voices.f0, voices.loudness, voices.scale, voices.tilt,
                               voices.noise_gain, voices.gru, voices.frame)
        np.copyto(voices.frame[0], voices.f0, casting="same_kind")
        TIMES.mark(MODEL)

    def _take(self, p: int, part: Part) -> None:
        """Part `p` starts playing its incoming chain: its voices fade over one hop, and its held
        keys (as the keyboard stands after this block's messages) start again in the new
        instrument, which crossfades in with the old chain's tail."""
        incoming = part.incoming
        part.taken = incoming
        chain, runner, name = incoming
        part.outgoing, part.chain, part.runner, part.name = part.chain, chain, runner, name
        part.fade_left = self._fade_len
        instrument = chain.instrument
        instrument.continue_clock(part.outgoing.instrument)
        instrument.handle(self._panic)
        self._only[:] = False
        self._only[p] = True
        replay = self.keyboard.replay()
        self._table[p] = part.params.values
        ek.route_events(replay, self._table, self._only, self._replay_routed, self._replay_counts, self._sounding)
        instrument.handle(self._replay_routed[p, : self._replay_counts[p]])
        self._live[p] = False  # the replay holds this block's messages for the part already
