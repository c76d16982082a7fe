import numpy as np
import pytest

from tests.streaming import random_blocks, render_in_blocks
from timbrel.engine.dsp import HarmonicOscillator, harmonic_amplitudes, harmonic_synth

SR, HOP = 48000, 160


def steady(frames, f0, amp, dist):
    dist = np.asarray(dist, dtype=float)
    return np.full(frames, f0), np.full(frames, amp), np.tile(dist, (frames, 1))


def random_controls(rng, voices, frames, harmonics, top_hz=4000.0):
    start = rng.uniform(40, top_hz, (voices, 1))
    f0 = np.clip(start * np.exp(np.cumsum(rng.normal(0, 0.03, (voices, frames)), axis=1)), 20, 2 * top_hz)
    amp = rng.uniform(0, 1, (voices, frames))
    dist = rng.uniform(0, 1, (voices, frames, harmonics)) ** 3
    return f0, amp, dist


def test_single_harmonic_is_a_sine_of_the_expected_frequency_and_amplitude():
    y = harmonic_synth(*steady(300, 440.0, 0.5, [1.0]), SR, HOP)
    n = np.arange(y.size)
    np.testing.assert_allclose(y, 0.5 * np.sin(2 * np.pi * 440.0 * n / SR), atol=1e-6)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    peak = np.argmax(spectrum)
    a, b, c = np.log(spectrum[peak - 1 : peak + 2])
    peak_hz = (peak + 0.5 * (a - c) / (a - 2 * b + c)) * SR / y.size
    assert abs(peak_hz - 440.0) < 0.05
    assert np.sqrt(np.mean(y**2)) * np.sqrt(2) == pytest.approx(0.5, rel=1e-3)


def test_harmonics_at_or_above_nyquist_are_dropped_and_the_rest_renormalised():
    f0, harmonics = 1234.5, 64
    valid = int(np.ceil(SR / 2 / f0)) - 1
    y = harmonic_synth(*steady(600, f0, 0.8, np.ones(harmonics)), SR, HOP).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(y * np.blackman(y.size))) / (np.blackman(y.size).sum() / 2)
    freqs = np.fft.rfftfreq(y.size, 1 / SR)
    near_partial = np.zeros_like(freqs, dtype=bool)
    for k in range(1, valid + 1):
        near_partial |= np.abs(freqs - k * f0) < 30
        assert spectrum[np.abs(freqs - k * f0) < 30].max() == pytest.approx(0.8 / valid, rel=0.01)
    assert 20 * np.log10(spectrum[~near_partial].max() / spectrum.max()) < -100


def test_a_glide_across_nyquist_never_aliases():
    frames, harmonics = 400, 32
    f0 = np.geomspace(300, 6000, frames)
    y = harmonic_synth(f0, np.full(frames, 0.5), np.ones((frames, harmonics)), SR, HOP)
    reference = np.zeros(y.size)
    a = harmonic_amplitudes(f0, np.full(frames, 0.5), np.ones((frames, harmonics)), SR)
    assert np.all(a[-1, SR // 2 // 6000 :] == 0)
    for k in range(1, harmonics + 1):
        mono = np.zeros(harmonics)
        mono[k - 1] = 1.0
        amps = a[:, k - 1]
        part = harmonic_synth(f0, amps, np.tile(mono, (frames, 1)), SR, HOP)
        reference += part
    limit = np.repeat(np.maximum(np.concatenate([f0[:1], f0[:-1]]), f0), HOP)
    assert np.all(np.abs(y - reference)[limit * harmonics < SR / 2] < 1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_offline_for_any_block_partition(seed):
    rng = np.random.default_rng(seed)
    voices, frames, harmonics = 3, 200, 64
    f0, amp, dist = random_controls(rng, voices, frames, harmonics)
    offline = harmonic_synth(f0, amp, dist, SR, HOP)
    osc = HarmonicOscillator(voices, harmonics, SR, HOP)
    sizes = random_blocks(rng) if seed else random_blocks(rng, 1, 7)
    streamed = render_in_blocks(osc, [f0, amp, dist], frames * HOP, sizes)
    assert np.abs(streamed - offline).max() < 1e-6


def test_voices_are_independent_and_inactive_voices_are_silent():
    rng = np.random.default_rng(5)
    f0, amp, dist = random_controls(rng, 4, 60, 16)
    osc = HarmonicOscillator(4, 16, SR, HOP)
    osc.active[2] = False
    out = render_in_blocks(osc, [f0, amp, dist], 60 * HOP, random_blocks(rng, 1, 500))
    assert np.all(out[2] == 0)
    for v in (0, 1, 3):
        assert np.abs(out[v] - harmonic_synth(f0[v], amp[v], dist[v], SR, HOP)).max() < 1e-6


def test_reset_voice_restarts_phase_and_holds_the_next_frame():
    rng = np.random.default_rng(9)
    f0, amp, dist = random_controls(rng, 1, 40, 8)
    osc = HarmonicOscillator(1, 8, SR, HOP)
    render_in_blocks(osc, [f0[:, :17], amp[:, :17], dist[:, :17]], 17 * HOP, random_blocks(rng, 1, 300))
    osc.reset_voice(0)
    again = render_in_blocks(osc, [f0, amp, dist], 40 * HOP, random_blocks(rng, 1, 300))
    assert np.abs(again[0] - harmonic_synth(f0[0], amp[0], dist[0], SR, HOP)).max() < 1e-6


def test_no_discontinuity_at_block_or_frame_boundaries():
    frames = 120
    rng = np.random.default_rng(3)
    f0 = 200 + 1800 * rng.uniform(size=frames)
    amp = rng.uniform(0.1, 1.0, frames)
    osc = HarmonicOscillator(1, 1, SR, HOP)
    y = render_in_blocks(osc, [f0[None], amp[None], np.ones((1, frames, 1))], frames * HOP, random_blocks(rng, 1, 37))[0]
    largest_step = amp.max() * 2 * np.pi * f0.max() / SR + np.abs(np.diff(amp)).max() / HOP
    assert np.abs(np.diff(y)).max() <= largest_step * 1.001
    assert abs(y[0]) == 0.0


def test_frequency_and_amplitude_ramp_linearly_within_a_hop():
    f0 = np.array([100.0, 100.0, 2100.0, 700.0])
    amp = np.array([0.2, 0.2, 1.0, 0.5])
    y = harmonic_synth(f0, amp, np.ones((4, 1)), SR, HOP)
    expected, phase = [], 0.0
    for i in range(4):
        prev = max(i - 1, 0)
        for j in range(HOP):
            t = (j + 1) / HOP
            expected.append((amp[prev] + (amp[i] - amp[prev]) * t) * np.sin(phase))
            phase += 2 * np.pi * (f0[prev] + (f0[i] - f0[prev]) * t) / SR
    np.testing.assert_allclose(y, expected, atol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(f0_hz=np.full(4, np.nan)), "NaN"),
        (dict(f0_hz=np.full(3, 100.0)), "shapes disagree"),
        (dict(f0_hz=np.full(4, -1.0)), ">= 0"),
        (dict(hop=0), "hop"),
        (dict(sample_rate=0), "sample_rate"),
    ],
)
def test_bad_controls_get_one_clear_error(bad, message):
    args = dict(f0_hz=np.full(4, 100.0), amplitude=np.ones(4), harmonic_distribution=np.ones((4, 2)), sample_rate=SR, hop=HOP)
    args.update(bad)
    with pytest.raises(ValueError, match=message):
        harmonic_synth(**args)
