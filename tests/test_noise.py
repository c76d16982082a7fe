import numpy as np
import pytest

from tests.streaming import random_blocks, render_in_blocks
from timbrel.engine.dsp import FilteredNoise, filtered_noise, noise_filter_matrix, white_noise

SR, HOP, BANDS = 48000, 160, 65


def smooth_profile(freqs_hz, nyquist_hz):
    x = np.asarray(freqs_hz) / nyquist_hz
    return 0.05 + 0.9 * np.exp(-((x - 0.25) ** 2) / 0.02) + 0.3 * np.exp(-((x - 0.7) ** 2) / 0.01)


def welch_db(x, n_fft=2048):
    window = np.hanning(n_fft)
    starts = range(0, x.size - n_fft, n_fft // 2)
    power = np.mean([np.abs(np.fft.rfft(x[s : s + n_fft] * window)) ** 2 for s in starts], axis=0)
    return 10 * np.log10(power / np.sum(window**2)), np.fft.rfftfreq(n_fft, 1 / SR)


def test_white_noise_is_uniform_deterministic_and_addressable():
    x = white_noise(200_000, seed=7)
    assert x.min() >= -1 and x.max() < 1
    assert abs(x.mean()) < 0.01 and x.var() == pytest.approx(1 / 3, rel=0.01)
    np.testing.assert_array_equal(x[1000:1010], white_noise(10, seed=7, start=1000))
    assert not np.array_equal(x[:100], white_noise(100, seed=8))
    assert not np.array_equal(x[:100], white_noise(100, seed=7, voice=1))
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 0.01


def test_spectrum_follows_band_magnitudes_within_1_db_averaged_over_frames():
    rng = np.random.default_rng(0)
    frames = 3000
    centres = np.linspace(0, SR / 2, BANDS)
    gain = rng.uniform(0.3, 1.5, frames)
    mags = smooth_profile(centres, SR / 2)[None, :] * gain[:, None]
    y = filtered_noise(mags, SR, HOP, seed=1).astype(np.float64)
    measured, freqs = welch_db(y)
    expected = 20 * np.log10(smooth_profile(freqs, SR / 2)) + 10 * np.log10(np.mean(gain**2) / 3)
    inside = (freqs > 400) & (freqs < SR / 2 - 400)
    assert np.abs(measured - expected)[inside].max() < 1.0


@pytest.mark.parametrize("rate", [44100, 96000])
def test_bands_are_defined_in_hz_so_other_rates_keep_the_spectrum(rate):
    model_nyquist = 24000.0
    frames = int(8 * rate / HOP)
    mags = np.tile(smooth_profile(np.linspace(0, model_nyquist, BANDS), model_nyquist), (frames, 1))
    y = filtered_noise(mags, rate, HOP, seed=2, band_nyquist_hz=model_nyquist).astype(np.float64)
    n_fft = 2048 if rate < 90000 else 4096
    window = np.hanning(n_fft)
    power = np.mean([np.abs(np.fft.rfft(y[s : s + n_fft] * window)) ** 2 for s in range(0, y.size - n_fft, n_fft // 2)], axis=0)
    measured = 10 * np.log10(power / np.sum(window**2))
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    expected = 20 * np.log10(smooth_profile(freqs, model_nyquist)) + 10 * np.log10(1 / 3)
    inside = (freqs > 400) & (freqs < min(rate / 2, model_nyquist) - 800)
    assert np.abs(measured - expected)[inside].max() < 1.0
    if rate > 2 * model_nyquist:
        assert measured[freqs > model_nyquist + 1000].max() < expected[inside].min() - 40


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_offline_for_any_block_partition(seed):
    rng = np.random.default_rng(seed)
    voices, frames = 2, 300
    mags = rng.uniform(0, 1, (voices, frames, BANDS)) ** 2
    offline = filtered_noise(mags, SR, HOP, seed=seed)
    noise = FilteredNoise(voices, BANDS, SR, HOP, seed=seed)
    sizes = random_blocks(rng) if seed else random_blocks(rng, 1, 7)
    streamed = render_in_blocks(noise, [mags], frames * HOP, sizes)
    assert np.abs(streamed - offline).max() < 1e-6


def test_same_seed_same_noise_and_reset_restarts_the_stream():
    rng = np.random.default_rng(4)
    mags = rng.uniform(0, 1, (1, 50, BANDS))
    noise = FilteredNoise(1, BANDS, SR, HOP, seed=11)
    first = render_in_blocks(noise, [mags], 50 * HOP, random_blocks(rng, 1, 900))
    noise.reset()
    second = render_in_blocks(noise, [mags], 50 * HOP, random_blocks(rng, 1, 900))
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - filtered_noise(mags, SR, HOP, seed=12)).max() > 0.01


def test_filter_is_linear_phase_with_the_requested_dc_and_nyquist_gain():
    matrix = noise_filter_matrix(BANDS, SR)
    assert matrix.shape == (128, BANDS)
    taps = matrix @ np.linspace(1.0, 0.0, BANDS)
    np.testing.assert_allclose(taps[1:64], taps[127:64:-1], atol=1e-12)
    response = np.abs(np.fft.rfft(taps, 4096))
    assert response[0] == pytest.approx(1.0, abs=0.01)
    assert response[-1] < 0.01


def test_bad_band_counts_are_rejected_clearly():
    with pytest.raises(ValueError, match="at least 2 bands"):
        noise_filter_matrix(1, SR)
    with pytest.raises(ValueError, match="NaN"):
        filtered_noise(np.full((3, 5), np.inf), SR, HOP)
