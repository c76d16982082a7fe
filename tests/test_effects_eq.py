"""The built-in EQ and gain/pan effects: cookbook responses, transparency, streaming, smoothness, no allocation."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from tests.streaming import random_blocks
from timbrel.engine.realtime.kernels import biquad
from timbrel.engine.realtime.kernels.stereo import stereo_matrix
from timbrel.plugin.effects.eq import ParametricEQ
from timbrel.plugin.effects.gain import GainPan, pan_gains

SR = 48000
NONE = np.zeros(0, dtype=np.int32)


def cookbook(kind: str, f0_hz: float, gain_db: float = 0.0, q: float = 1.0,
             sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """`(b, a)` of one RBJ cookbook filter, written out independently of `timbrel.engine.realtime.kernels.biquad`.

    Shelves use the cookbook's slope form with S = 1; cuts are Butterworth (Q = 1/sqrt(2)).
    """
    A = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0_hz / sr
    cw, sw = np.cos(w0), np.sin(w0)
    if kind == "peak":
        alpha = sw / (2 * q)
        return np.array([1 + alpha * A, -2 * cw, 1 - alpha * A]), np.array([1 + alpha / A, -2 * cw, 1 - alpha / A])
    if kind in ("low_shelf", "high_shelf"):
        slope = 1.0
        alpha = sw / 2 * np.sqrt((A + 1 / A) * (1 / slope - 1) + 2)
        s = 1 if kind == "low_shelf" else -1
        b = A * np.array([(A + 1) - s * (A - 1) * cw + 2 * np.sqrt(A) * alpha,
                          s * 2 * ((A - 1) - s * (A + 1) * cw),
                          (A + 1) - s * (A - 1) * cw - 2 * np.sqrt(A) * alpha])
        a = np.array([(A + 1) + s * (A - 1) * cw + 2 * np.sqrt(A) * alpha,
                      -s * 2 * ((A - 1) + s * (A + 1) * cw),
                      (A + 1) + s * (A - 1) * cw - 2 * np.sqrt(A) * alpha])
        return b, a
    alpha = sw / (2 / np.sqrt(2))
    if kind == "high_pass":
        return np.array([(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]), np.array([1 + alpha, -2 * cw, 1 - alpha])
    return np.array([(1 - cw) / 2, 1 - cw, (1 - cw) / 2]), np.array([1 + alpha, -2 * cw, 1 - alpha])


def response(b: np.ndarray, a: np.ndarray, freqs_hz: np.ndarray, sr: int = SR) -> np.ndarray:
    """H(e^jw) of `b / a` at `freqs_hz` (complex)."""
    z = np.exp(-1j * 2 * np.pi * freqs_hz / sr)
    return (b[0] + b[1] * z + b[2] * z**2) / (a[0] + a[1] * z + a[2] * z**2)


def configure(effect, **settings: float):
    """Set parameter targets on `effect` (before `prepare`, which snaps values to them); returns it."""
    for key, value in settings.items():
        effect.params.set(key, value)
    return effect


def stream(effect, audio: np.ndarray, max_block: int, next_block, changes=None) -> np.ndarray:
    """Render `audio` `[2, samples]` through `effect` on views of one `[2, max_block]` bus, as a host does.

    `changes` maps a sample position to settings applied just before the block starting there
    (a block always starts at each such position).
    """
    changes = changes or {}
    effect.prepare(SR, max_block)
    bus = np.zeros((2, max_block), dtype=np.float32)
    silence = np.zeros(max_block, dtype=np.float32)
    out = np.zeros_like(audio, dtype=np.float32)
    done = 0
    while done < audio.shape[1]:
        if done in changes:
            configure(effect, **changes[done])
        n = min(int(next_block()), max_block, audio.shape[1] - done)
        n = min([n] + [at - done for at in changes if at > done])
        view = bus[:, :n]
        view[:] = audio[:, done : done + n]
        effect.process(silence[:n], view, NONE)
        out[:, done : done + n] = view
        done += n
    return out


def sine(freq_hz: float, seconds: float, amplitude: float = 0.25) -> np.ndarray:
    """The same sine on both channels: float32 `[2, samples]`."""
    t = np.arange(int(seconds * SR)) / SR
    x = (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return np.stack([x, x])


ACTIVE = {
    "low_cut": 1, "low_cut_hz": 60, "low_shelf_hz": 150, "low_shelf_db": 4,
    "peak1_hz": 700, "peak1_db": -6, "peak1_q": 2, "peak2_hz": 3500, "peak2_db": 5, "peak2_q": 0.7,
    "high_shelf_hz": 9000, "high_shelf_db": -3, "high_cut": 1, "high_cut_hz": 16000, "output_db": -2,
}
"""Every band of the EQ in use."""


@pytest.mark.parametrize("settings, filters", [
    ({"low_cut": 1, "low_cut_hz": 120}, [("high_pass", 120, 0, 0)]),
    ({"low_shelf_hz": 200, "low_shelf_db": 6}, [("low_shelf", 200, 6, 0)]),
    ({"low_shelf_hz": 60, "low_shelf_db": -15}, [("low_shelf", 60, -15, 0)]),
    ({"peak1_hz": 1000, "peak1_db": 9, "peak1_q": 2}, [("peak", 1000, 9, 2)]),
    ({"peak2_hz": 50, "peak2_db": -12, "peak2_q": 4}, [("peak", 50, -12, 4)]),
    ({"peak2_hz": 12000, "peak2_db": 18, "peak2_q": 0.1}, [("peak", 12000, 18, 0.1)]),
    ({"high_shelf_hz": 6000, "high_shelf_db": -8}, [("high_shelf", 6000, -8, 0)]),
    ({"high_cut": 1, "high_cut_hz": 5000}, [("low_pass", 5000, 0, 0)]),
    (ACTIVE, [("high_pass", 60, 0, 0), ("low_shelf", 150, 4, 0), ("peak", 700, -6, 2), ("peak", 3500, 5, 0.7),
              ("high_shelf", 9000, -3, 0), ("low_pass", 16000, 0, 0)]),
])
def test_each_band_matches_the_cookbook_magnitude_within_a_tenth_of_a_db(settings, filters):
    length = 1 << 16
    impulse = np.zeros(length, dtype=np.float32)
    impulse[0] = 1.0
    out = configure(ParametricEQ(), **settings)(impulse, SR)
    freqs = np.fft.rfftfreq(length, 1 / SR)
    keep = (freqs >= 20) & (freqs <= 20000)
    expected = np.full(keep.sum(), 10 ** (settings.get("output_db", 0) / 20), dtype=complex)
    for kind, f0, gain_db, q in filters:
        expected *= response(*cookbook(kind, f0, gain_db, q), freqs[keep])
    expected_db = 20 * np.log10(np.abs(expected))
    for channel in out:
        measured_db = 20 * np.log10(np.abs(np.fft.rfft(channel.astype(np.float64)))[keep])
        assert np.abs(measured_db - expected_db).max() < 0.1


def test_a_flat_eq_passes_audio_unchanged():
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal((2, SR)) * 0.3).astype(np.float32)
    eq = configure(ParametricEQ(), peak1_hz=300, peak1_q=8, peak2_hz=9000, high_shelf_hz=2000, low_cut_hz=500)
    assert np.abs(eq(audio, SR) - audio).max() <= 1e-6
    assert np.abs(GainPan()(audio, SR) - audio).max() <= 1e-6


@pytest.mark.parametrize("make", [lambda: configure(ParametricEQ(), **ACTIVE),
                                  lambda: configure(GainPan(), gain_db=-4, pan=0.3, width=1.6)])
def test_streaming_in_random_blocks_equals_one_whole_buffer(make):
    rng = np.random.default_rng(2)
    audio = (rng.standard_normal((2, 3 * SR)) * 0.3).astype(np.float32)
    whole = stream(make(), audio, audio.shape[1], lambda: audio.shape[1])
    for seed in (3, 4):
        pieces = stream(make(), audio, 4096, random_blocks(np.random.default_rng(seed), 1, 4096))
        assert np.abs(pieces - whole).max() <= 1e-6


def test_the_cut_switches_crossfade_the_same_way_whatever_the_blocks():
    rng = np.random.default_rng(5)
    audio = (rng.standard_normal((2, SR)) * 0.3).astype(np.float32)
    changes = {10007: {"low_cut": 1, "high_cut": 1}, 30011: {"high_cut": 0}, 30100: {"high_cut": 1}}
    settings = {"low_cut_hz": 400, "high_cut_hz": 2000, "peak1_db": 3}
    parts = [0, *sorted(changes), audio.shape[1]]
    sizes = iter(np.diff(parts))
    whole = stream(configure(ParametricEQ(), **settings), audio, audio.shape[1], lambda: next(sizes), changes)
    pieces = stream(configure(ParametricEQ(), **settings), audio, 4096, random_blocks(rng, 1, 700), changes)
    assert np.abs(pieces - whole).max() <= 1e-6
    reference = stream(configure(ParametricEQ(), **settings), audio, 4096, lambda: 4096)
    assert np.abs(whole[:, :10007] - reference[:, :10007]).max() <= 1e-6
    assert np.abs(whole[:, 10007:] - reference[:, 10007:]).max() > 0.1


def at_a_crest(block: int, freq_hz: float) -> int:
    """A block boundary about half a second in where a sine of `freq_hz` is near its crest:
    a gain change at a zero crossing would hide a step."""
    return block * round((SR // 2 + SR / freq_hz / 4) / block)


def clean_second_difference(audio: np.ndarray, freq_hz: float, at: int) -> float:
    """The largest |x[n] - 2x[n-1] + x[n-2]| a sine of `freq_hz` has at the larger of the steady
    amplitudes before `at` and at the end: that amplitude times (2 sin(w/2))^2."""
    amplitude = max(np.abs(audio[at - 4800 : at]).max(), np.abs(audio[-4800:]).max())
    return amplitude * (2 * math.sin(math.pi * freq_hz / SR)) ** 2


@pytest.mark.parametrize("block", [32, 512])
@pytest.mark.parametrize("before, change", [
    ({"peak1_hz": 1000, "peak1_q": 1}, {"peak1_db": 12}),
    ({"peak1_hz": 1500, "peak1_q": 1}, {"peak1_db": 12}),
    ({"low_shelf_hz": 2000}, {"low_shelf_db": 18}),
    ({"high_shelf_hz": 1000}, {"high_shelf_db": -18, "output_db": 6}),
])
def test_a_gain_step_between_blocks_does_not_click(block, before, change):
    freq = 500.0
    audio = sine(freq, 1.0)
    at = at_a_crest(block, freq)
    out = stream(configure(ParametricEQ(), **before), audio, block, lambda: block, {at: change})[0].astype(np.float64)
    assert abs(math.log(np.abs(out[-4800:]).max() / np.abs(out[at - 4800 : at]).max())) > math.log(1.15)
    # The gliding level adds well under 1 % to a sine's second difference; a step D adds D.
    # Jumping the coefficients at the block boundary instead gives 6 to 190 times the bound.
    assert np.abs(np.diff(out, 2)).max() < 1.25 * clean_second_difference(out, freq, at)


def high_band_db(segment: np.ndarray, above_hz: float = 3000.0) -> float:
    """Share of a Hann-windowed segment's power above `above_hz`, in dB."""
    power = np.abs(np.fft.rfft(segment * np.hanning(segment.size))) ** 2
    freqs = np.fft.rfftfreq(segment.size, 1 / SR)
    return float(10 * np.log10(power[freqs > above_hz].sum() / power.sum() + 1e-30))


@pytest.mark.parametrize("block", [32, 512])
@pytest.mark.parametrize("before, change", [
    ({"peak1_hz": 1000, "peak1_db": 12}, {"peak1_hz": 250}),
    ({"peak1_hz": 300, "peak1_db": -12}, {"peak1_q": 8}),
    ({"low_cut_hz": 300}, {"low_cut": 1}),
    ({"low_cut_hz": 300, "low_cut": 1}, {"low_cut": 0}),
    ({"high_cut_hz": 1000, "high_cut": 1}, {"high_cut": 0}),
])
def test_moving_a_frequency_or_q_or_flipping_a_cut_switch_does_not_click(block, before, change):
    # A 200 Hz sine whose level and phase glide keeps its power within a few hundred Hz of
    # 200; a click spreads power across the spectrum (an unsmoothed version of any of these
    # changes puts -60 to -25 dB above 3 kHz; the smoothed ones stay below -95 dB).
    audio = sine(200.0, 1.0)
    at = at_a_crest(block, 200.0)
    out = stream(configure(ParametricEQ(), **before), audio, block, lambda: block, {at: change})[0].astype(np.float64)
    assert high_band_db(out[at - 8192 : at - 4096]) < -120
    assert high_band_db(out[at - 2048 : at + 2048]) < -90


def test_silence_and_bad_input_leave_the_state_clean():
    eq = configure(ParametricEQ(), **ACTIVE)
    eq.prepare(SR, 256)
    bus = np.zeros((2, 256), dtype=np.float32)
    silence = np.zeros(256, dtype=np.float32)
    bus[:] = 0.5
    bus[0, 10] = np.nan
    bus[1, 20] = np.inf
    eq.process(silence, bus, NONE)
    assert np.isfinite(bus).all()
    tiny = np.finfo(np.float64).tiny
    subnormal = False
    for _ in range(SR * 5 // 256):
        bus[:] = 0.0
        eq.process(silence, bus, NONE)
        state = np.abs(eq._state)
        subnormal |= bool(np.any((state > 0) & (state < tiny)))
    assert not subnormal
    assert np.isfinite(eq._state).all()
    assert np.abs(bus).max() == 0.0


def test_prepare_compiles_the_kernels_so_no_block_waits_for_numba():
    eq = configure(ParametricEQ(), **ACTIVE)
    gain = GainPan()
    eq.prepare(SR, 512)
    gain.prepare(SR, 512)
    before = (len(biquad.cascade.signatures), len(stereo_matrix.signatures))
    bus = np.zeros((2, 512), dtype=np.float32)
    silence = np.zeros(512, dtype=np.float32)
    for view in (bus, bus[:, :100], bus[:, :1]):
        eq.process(silence[: view.shape[1]], view, NONE)
        gain.process(silence[: view.shape[1]], view, NONE)
    assert (len(biquad.cascade.signatures), len(stereo_matrix.signatures)) == before


@pytest.mark.parametrize("make", [lambda: configure(ParametricEQ(), **ACTIVE), lambda: GainPan()])
def test_process_allocates_no_arrays_and_nothing_that_grows(make):
    effect = make()
    block = 1024
    effect.prepare(SR, block)
    bus = np.zeros((2, block), dtype=np.float32)
    silence = np.zeros(block, dtype=np.float32)
    rng = np.random.default_rng(6)
    noise = (rng.standard_normal((2, block)) * 0.1).astype(np.float32)
    knob = "peak1_db" if isinstance(effect, ParametricEQ) else "gain_db"
    count = 0

    def run(blocks: int) -> None:
        nonlocal count
        for _ in range(blocks):
            count += 1
            effect.params.set(knob, (count % 9) - 4.0)
            n = block - count % 7
            view = bus[:, :n]
            np.copyto(view, noise[:, :n])
            effect.process(silence[:n], view, NONE)

    run(100)
    tracemalloc.start()
    try:
        rounds = []
        for _ in range(3):
            tracemalloc.reset_peak()
            run(300)
            rounds.append(tracemalloc.get_traced_memory())
    finally:
        tracemalloc.stop()
    assert abs(rounds[2][0] - rounds[1][0]) < 512
    # numba's argument unboxing makes about 0.4 KB of short-lived small objects per call;
    # a temporary of one channel (4 KB here) or of the bus would lift the peak past 1 KB.
    assert max(peak - current for current, peak in rounds) < 1024


# GainPan


def test_pan_law_is_constant_power_with_a_unity_centre():
    assert pan_gains(-1.0) == pytest.approx((math.sqrt(2), 0.0), abs=1e-12)
    assert pan_gains(0.0) == pytest.approx((1.0, 1.0), abs=1e-12)
    assert pan_gains(1.0) == pytest.approx((0.0, math.sqrt(2)), abs=1e-12)
    for pan in np.linspace(-1, 1, 21):
        left, right = pan_gains(pan)
        assert left**2 + right**2 == pytest.approx(2.0)
    rng = np.random.default_rng(7)
    audio = (rng.standard_normal((2, 4000)) * 0.3).astype(np.float32)
    for pan, (left, right) in ((-1, (math.sqrt(2), 0)), (0, (1, 1)), (1, (0, math.sqrt(2)))):
        out = configure(GainPan(), pan=pan)(audio, SR)
        np.testing.assert_allclose(out[0], audio[0] * left, atol=1e-6)
        np.testing.assert_allclose(out[1], audio[1] * right, atol=1e-6)


@pytest.mark.parametrize("gain_db", [-60.0, -6.0, 0.0, 3.5, 24.0])
def test_gain_in_db_is_exact(gain_db):
    rng = np.random.default_rng(8)
    audio = (rng.standard_normal((2, 5000)) * 0.1).astype(np.float32)
    out = configure(GainPan(), gain_db=gain_db)(audio, SR)
    np.testing.assert_allclose(out, audio * 10 ** (gain_db / 20), rtol=1e-6, atol=1e-12)


def test_width_scales_the_side_signal_and_polarity_inverts():
    rng = np.random.default_rng(9)
    audio = (rng.standard_normal((2, 3000)) * 0.3).astype(np.float32)
    mid, side = (audio[0] + audio[1]) / 2, (audio[0] - audio[1]) / 2
    for width in (0.0, 0.5, 2.0):
        out = configure(GainPan(), width=width)(audio, SR)
        np.testing.assert_allclose(out, np.stack([mid + width * side, mid - width * side]), atol=1e-6)
    np.testing.assert_allclose(configure(GainPan(), phase_invert=1)(audio, SR), -audio, atol=1e-6)


@pytest.mark.parametrize("knob, value", [("gain_db", -20.0), ("pan", 1.0), ("phase_invert", 1.0)])
def test_automation_ramps_continuously_per_sample(knob, value):
    block = 64
    audio = np.ones((2, SR // 2), dtype=np.float32)
    at = 40 * block
    out = stream(GainPan(), audio, block, lambda: block, {at: {knob: value}})[0].astype(np.float64)
    settled = {"gain_db": 0.1, "pan": 0.0, "phase_invert": -1.0}[knob]
    assert np.all(out[:at] == 1.0)
    assert out[-1] == pytest.approx(settled, abs=1e-4)
    steps = np.abs(np.diff(out))
    assert np.all(np.diff(out[at - 1 :]) <= 1e-7)
    # Within a block the gain moves in equal steps, and no step exceeds the first block's,
    # which glides over only a few percent of the total change: no sample jumps.
    first = out[at - 1 : at + block]
    np.testing.assert_allclose(np.diff(first), (first[-1] - first[0]) / block, atol=1e-6)
    assert steps.max() <= abs(first[-1] - first[0]) / block + 1e-6
    assert steps.max() < 0.05 * abs(1.0 - settled)
