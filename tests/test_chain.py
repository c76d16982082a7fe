"""The effects chain: order, latency, click-free edits while playing, and fault isolation."""

from __future__ import annotations

import time

import numpy as np
import pytest

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Effect, Parameter, Plugin
from timbrel.engine.realtime.events import CONTROL_CHANGE, NOTE_OFF, NOTE_ON
from timbrel.engine.realtime.host import Engine
from timbrel.plugin.chain import FADE_S, OVER_BUDGET_BLOCKS, Chain
from timbrel.plugin.effects.reverb import LearnedReverb
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import load_model
from timbrel.presets import default_model

SR, BLOCK = 48000, 128


class Sine(Plugin):
    """A test instrument: a steady sine on both channels, continuous across blocks."""

    name = "sine"
    parameters = (Parameter("hz", "Frequency", "Hz", 20.0, 20000.0, 440.0),)

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        self.phase = 0
        self.ramp = np.arange(max_block, dtype=np.float64)

    def process(self, inp, out, events) -> None:
        n = out.shape[1]
        w = 2 * np.pi * self.params.values[0] / self.sample_rate
        out[:] = (0.5 * np.sin(w * (self.phase + self.ramp[:n]))).astype(np.float32)
        self.phase += n


class Gain(Effect):
    """A plain gain, with an optional latency, to test order and reporting."""

    name = "gain"
    parameters = (Parameter("gain", "Gain", "", 0.0, 4.0, 1.0, smoothing_ms=0.0),)

    def __init__(self, gain: float = 1.0, latency: int = 0):
        super().__init__()
        self.params.set("gain", gain)
        self._latency = latency

    @property
    def latency_samples(self) -> int:
        return self._latency

    def process(self, inp, out, events) -> None:
        self.params.advance(out.shape[1] / self.sample_rate)
        out *= self.params.values[0]


class Offset(Effect):
    """Adds a constant: does not commute with Gain, so it reveals the order of effects."""

    name = "offset"

    def process(self, inp, out, events) -> None:
        out += 0.25


class Raises(Effect):
    name = "raises"

    def __init__(self, after: int = 3):
        super().__init__()
        self.after = after

    def process(self, inp, out, events) -> None:
        self.after -= 1
        if self.after < 0:
            raise RuntimeError("boom")
        out *= 0.5


class WrongShape(Effect):
    name = "wrongshape"

    def process(self, inp, out, events):
        return np.zeros((out.shape[1], 2), dtype=np.float32)


class ReturnsArray(Effect):
    """A well-behaved effect that returns its output instead of writing it in place."""

    name = "returns"

    def process(self, inp, out, events):
        return out * 0.5


class MakesNaN(Effect):
    name = "nan"

    def process(self, inp, out, events) -> None:
        out[0, out.shape[1] // 2] = np.nan


class Slow(Effect):
    """Burns CPU for a set share of every block."""

    name = "slow"

    def __init__(self, share: float):
        super().__init__()
        self.share = share

    def process(self, inp, out, events) -> None:
        stop = time.thread_time_ns() + int(self.share * out.shape[1] / self.sample_rate * 1e9)
        while time.thread_time_ns() < stop:
            pass


def run(chain: Plugin, blocks: int, edits: dict | None = None, block: int = BLOCK) -> np.ndarray:
    """Process `blocks` blocks through `chain` as the engine would, applying `edits[i](chain)` before block i."""
    chain.prepare(SR, 4096)
    out = np.zeros((2, blocks * block), dtype=np.float32)
    bus = np.zeros((2, 4096), dtype=np.float32)
    silence = np.zeros(4096, dtype=np.float32)
    none = np.zeros(0, dtype=np.int32)
    for i in range(blocks):
        if edits and i in edits:
            edits[i](chain)
        view = bus[:, :block]
        chain.process(silence[:block], view, none)
        out[:, i * block : (i + 1) * block] = view
    return out


def clean_sine(samples: int, hz: float = 440.0) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * hz / SR * np.arange(samples))


def max_jump(x: np.ndarray) -> float:
    """Largest second difference: a step or a kink in a smooth signal shows up here."""
    return float(np.max(np.abs(np.diff(x, 2))))


def test_effects_run_in_order_after_the_instrument():
    forward = run(Chain(Sine(), [Gain(2.0), Offset()]), 20)
    backward = run(Chain(Sine(), [Offset(), Gain(2.0)]), 20)
    s = clean_sine(20 * BLOCK)
    np.testing.assert_allclose(forward[0], 2 * s + 0.25, atol=1e-5)
    np.testing.assert_allclose(backward[0], 2 * (s + 0.25), atol=1e-5)


def test_an_effect_may_return_its_output_instead_of_writing_in_place():
    out = run(Chain(Sine(), [ReturnsArray()]), 10)
    np.testing.assert_allclose(out[1], 0.5 * clean_sine(10 * BLOCK), atol=1e-6)


def test_a_chain_without_instrument_is_an_effect_callable_on_a_buffer():
    audio = np.random.default_rng(0).standard_normal((2, 5000)).astype(np.float32) * 0.1
    chain = Chain(None, [Gain(2.0), Offset()])
    assert chain.kind == "effect"
    np.testing.assert_allclose(chain(audio, SR, block=256), 2 * audio + 0.25, atol=1e-6)
    nested = Chain(Sine(), [Chain(None, [Gain(2.0)]), Offset()])
    np.testing.assert_allclose(run(nested, 10)[0], 2 * clean_sine(10 * BLOCK) + 0.25, atol=1e-5)


def test_total_latency_counts_effects_that_are_not_bypassed():
    chain = Chain(Sine(), [Gain(1.0, latency=64), Gain(1.0, latency=100)])
    assert chain.latency_samples == 164
    chain.bypass(1)
    assert chain.latency_samples == 64
    chain.bypass(1, False)
    chain.append(Gain(1.0, latency=7))
    assert chain.latency_samples == 171


def test_inserting_an_effect_while_playing_fades_it_in_without_a_click():
    blocks = 60
    out = run(Chain(Sine(), []), blocks, {20: lambda c: c.insert(0, Gain(0.1))})[0]
    clean = clean_sine(blocks * BLOCK)
    assert max_jump(out) < 1.5 * max_jump(clean)
    start, fade = 20 * BLOCK, int(FADE_S * SR)
    np.testing.assert_allclose(out[:start], clean[:start], atol=1e-6)
    np.testing.assert_allclose(out[start + fade + 1 :], 0.1 * clean[start + fade + 1 :], atol=1e-6)


def test_an_abrupt_gain_change_would_have_been_seen_as_a_click():
    """The click measure above can fail: a gain switched at a block boundary trips it."""
    out = run(Chain(Sine(), [Gain(1.0)]), 60, {20: lambda c: c[0].params.set("gain", 0.1)})[0]
    assert max_jump(out) > 3 * max_jump(clean_sine(60 * BLOCK))


def test_removing_moving_and_bypassing_while_playing_never_click():
    edits = {
        10: lambda c: c.remove("offset"),
        30: lambda c: c.move(0, 1),
        50: lambda c: c.bypass("gain"),
        70: lambda c: c.bypass("gain", False),
        90: lambda c: c.insert(1, Offset()),
        95: lambda c: c.move("offset", 0),
        97: lambda c: c.remove(0),
    }
    chain = Chain(Sine(), [Gain(0.5), Offset(), Gain(1.5)])
    out = run(chain, 140, edits)[0]
    clean = clean_sine(140 * BLOCK)
    loudest = 1.5
    assert max_jump(out) < 1.1 * loudest * max_jump(clean)
    assert [s.key for s in chain.slots] == ["gain-2", "gain"]
    np.testing.assert_allclose(out[-BLOCK:], 0.75 * clean[-BLOCK:], atol=1e-5)


def test_edits_reach_the_audio_thread_only_at_block_boundaries_and_removed_effects_are_freed_off_it():
    chain = Chain(Sine(), [Gain(0.5)])
    run(chain, 2)
    removed = chain.remove(0)
    assert chain.effects == []
    assert chain._slots[0].effect is removed
    bus, none = np.zeros((2, BLOCK), np.float32), np.zeros(0, np.int32)
    for _ in range(int(FADE_S * SR / BLOCK) + 2):
        chain.process(np.zeros(BLOCK, np.float32), bus, none)
    assert chain._slots == ()
    assert chain._history
    chain.collect()
    assert not chain._history


@pytest.mark.parametrize("bad, fault", [
    (Raises(), "raised RuntimeError: boom"),
    (WrongShape(), f"returned [{BLOCK}, 2] instead of [2, {BLOCK}]"),
    (MakesNaN(), "produced NaN or inf"),
])
def test_a_faulty_effect_is_disabled_with_one_line_and_the_rest_keeps_playing(bad, fault):
    chain = Chain(Sine(), [Gain(2.0), bad, Offset()])
    out = run(chain, 30)
    assert chain.faults == [f"effect '{bad.name}' disabled: {fault}"]
    assert "\n" not in chain.faults[0]
    tail = out[0, 10 * BLOCK :]
    np.testing.assert_allclose(tail, 2 * clean_sine(30 * BLOCK)[10 * BLOCK :] + 0.25, atol=1e-5)
    assert np.isfinite(out).all()


def test_an_effect_over_its_time_budget_repeatedly_is_disabled_but_one_slow_block_is_forgiven():
    chain = Chain(Sine(), [Slow(0.6), Gain(2.0)])
    out = run(chain, 3 * OVER_BUDGET_BLOCKS)
    assert len(chain.faults) == 1 and chain.faults[0].startswith("effect 'slow' disabled: over its time budget")
    np.testing.assert_allclose(out[0, -BLOCK:], 2 * clean_sine(3 * OVER_BUDGET_BLOCKS * BLOCK)[-BLOCK:], atol=1e-5)
    occasional = Chain(Sine(), [Slow(0.05)])
    edits = {i: (lambda c: setattr(c[0], "share", 0.6)) if i % 4 == 0 else (lambda c: setattr(c[0], "share", 0.0))
             for i in range(64)}
    run(occasional, 64, edits)
    assert occasional.faults == []


def test_an_engine_playing_a_chain_survives_a_faulty_effect_and_reports_it():
    engine = Engine(SR, 1024)
    engine.load(Chain(Sine(), [Raises(after=0)]))
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    for _ in range(20):
        engine.process(None, out)
    status = engine.status()
    assert status.errors == 0
    assert status.faults == ("effect 'raises' disabled: raised RuntimeError: boom",)
    assert np.abs(out).max() > 0.4


def test_parameters_are_addressed_by_effect_key_and_bad_names_fail_in_one_line():
    engine = Engine(SR, 1024)
    chain = Chain(Sine(), [Gain(1.0), Gain(1.0)])
    engine.load(chain)
    assert engine.set_parameter("gain-2.gain", 3.5) == 3.5
    assert chain["gain-2"].params.get("gain") == 3.5
    for bad in (9.0, float("nan")):
        with pytest.raises(TimbrelError, match=r"^gain-2\.gain = (9 is out of range|nan is not a finite number) \(0 to 4\)$"):
            engine.set_parameter("gain-2.gain", bad)
    assert chain["gain-2"].params.get("gain") == 3.5
    assert engine.set_parameter("hz", 220.0) == 220.0
    with pytest.raises(TimbrelError, match="no effect 'eq' in the chain"):
        engine.set_parameter("eq.gain", 1.0)
    with pytest.raises(TimbrelError, match=r"^no parameter 'gain.q' \(the effect 'gain' has: gain\)$"):
        engine.set_parameter("gain.q", 1.0)
    with pytest.raises(TimbrelError, match="cannot play alone"):
        engine.load(Gain())
    with pytest.raises(TimbrelError, match="not an effect"):
        chain.append(Sine())


def test_the_learned_reverb_effect_is_the_models_impulse_response():
    reverb = LearnedReverb(default_model())
    reverb.params.set("mix", 1.0)
    impulse = np.zeros(SR, dtype=np.float32)
    impulse[0] = 1.0
    out = reverb(impulse, SR, block=BLOCK)
    ir = reverb._ir
    np.testing.assert_allclose(out[0, : ir.size], ir[:SR], atol=1e-5)
    np.testing.assert_array_equal(out[0], out[1])
    reverb.params.set("mix", 0.0)
    np.testing.assert_allclose(reverb(impulse, SR, block=BLOCK)[0], impulse, atol=1e-7)
    body = LearnedReverb(default_model(), skip_body_ms=20.0)
    body.params.set("mix", 1.0)
    skip = int(0.02 * SR)
    np.testing.assert_allclose(body(impulse, SR, block=BLOCK)[0, : ir.size - skip], ir[skip:SR], atol=1e-5)


def test_the_learned_reverb_convolves_a_mono_input_once_and_sounds_as_if_it_ran_both_channels():
    rng = np.random.default_rng(3)
    left = rng.normal(0.0, 0.1, 6 * BLOCK).astype(np.float32)
    stereo = np.stack([left, left])
    stereo[1, 4 * BLOCK + 5:] = rng.normal(0.0, 0.1, 2 * BLOCK - 5)  # stereo from the fifth block on
    shared, both = LearnedReverb(default_model()), LearnedReverb(default_model())
    outs = []
    for reverb in (shared, both):
        reverb.params.set("mix", 0.5)
        reverb.prepare(SR, BLOCK)
        reverb.reset()
        reverb.params.snap()
        out = stereo.copy()
        for b in range(6):
            if reverb is both:
                reverb._mono = False
            reverb.process(None, out[:, b * BLOCK:(b + 1) * BLOCK], np.zeros(0, np.int32))
            if reverb is shared and b < 4:
                assert reverb._mono and reverb._convolvers[1]._state[0] == 0  # the right convolver stood idle
        outs.append(out)
    assert not shared._mono
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0][0, 4 * BLOCK:], outs[0][1, 4 * BLOCK:])


def test_held_notes_and_the_pedal_carry_over_to_a_newly_loaded_instrument():
    model = load_model(default_model())
    engine = Engine(SR, 1024)
    engine.load(MidiInstrument(model, voices=8))
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    for message in (NOTE_ON | 60 << 8 | 100 << 16, NOTE_ON | 64 << 8 | 90 << 16, CONTROL_CHANGE | 64 << 8 | 127 << 16,
                    NOTE_OFF | 64 << 8, NOTE_ON | 1 | 67 << 8 | 80 << 16):
        engine.events.push(message)
    for _ in range(20):
        engine.process(None, out)
    assert engine.keyboard.held_notes() == [(0, 60), (0, 64), (1, 67)]
    second = MidiInstrument(model, voices=8)
    engine.load(Chain(second, [Gain(1.0)]))
    for _ in range(20):
        engine.process(None, out)
    assert engine.plugin is not None and engine.plugin.instrument is second
    assert second.active_voices == 3
    assert sorted(second._note[second._state != 0].tolist()) == [60, 64, 67]
    engine.events.push(CONTROL_CHANGE | 64 << 8)
    engine.events.push(NOTE_OFF | 60 << 8)
    engine.events.push(NOTE_OFF | 1 | 67 << 8)
    for _ in range(200):
        engine.process(None, out)
    assert second.active_voices == 0 and engine.keyboard.held_notes() == []


class Counted(Gain):
    """A gain that counts its blocks and declares a tail (None: it may sound from silence)."""

    def __init__(self, tail_s: float | None):
        super().__init__(1.0)
        self._tail_s = tail_s
        self.blocks = 0

    @property
    def tail_s(self) -> float | None:
        return self._tail_s

    def process(self, inp, out, events) -> None:
        self.blocks += 1
        super().process(inp, out, events)


class Gated(Sine):
    """A sine that sounds only while `on` is set."""

    on = True

    def process(self, inp, out, events) -> None:
        super().process(inp, out, events)
        if not self.on:
            out[:] = 0.0


def test_an_effect_is_skipped_once_its_input_has_been_silent_for_its_tail():
    instrument, short, unknown = Gated(), Counted(0.1), Counted(None)
    chain = Chain(instrument, [short, unknown])

    def mute(on: bool):
        return lambda c: setattr(instrument, "on", on)

    out = run(chain, 400, {0: mute(True), 100: mute(False), 300: mute(True)})
    tail_blocks = int(0.1 * SR / BLOCK) + 1
    assert short.blocks == 400 - (200 - tail_blocks)
    assert unknown.blocks == 400
    np.testing.assert_array_equal(out[:, 300 * BLOCK:], np.tile(out[:, 300 * BLOCK:][:1], (2, 1)))
    assert np.abs(out[:, 300 * BLOCK:]).max() > 0.4 and np.abs(out[:, 100 * BLOCK:300 * BLOCK]).max() == 0.0


def test_built_in_effects_state_their_tails():
    from timbrel.plugin.effects import BUILTIN, create_effect

    for name in BUILTIN:
        effect = create_effect(name, **({"model": default_model()} if name == "reverb" else {}))
        assert effect.tail_s is not None and 0.0 <= effect.tail_s <= 60.0, name
    delay = create_effect("delay", {"feedback": 0.9})
    assert delay.tail_s > create_effect("delay", {"feedback": 0.1}).tail_s
