"""The differentiable torch twin (export/synth.py) against the streaming numba kernels.

docs/DSP.md: torch equals numba within 1e-5 relative RMS. The kernels are driven as the
engine drives them: `push` at every hop boundary, `render` over host blocks of random
sizes split at segment ends (`Convolver.process` over random blocks).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.streaming import random_blocks, render_in_blocks  # noqa: E402
from timbrel.engine.dsp import (  # noqa: E402
    FilteredNoise,
    HarmonicOscillator,
    harmonic_amplitudes,
    noise_filter_matrix,
    white_noise,
)
from timbrel.engine.realtime.kernels.convolution import Convolver  # noqa: E402
from timbrel.export import synth  # noqa: E402

TOLERANCE = 1e-5


def relative_rms(y: np.ndarray, ref: np.ndarray) -> float:
    """Worst row of `rms(y - ref) / rms(ref)` over `[voices, samples]`."""
    err = np.sqrt(np.mean((np.asarray(y, np.float64) - ref) ** 2, axis=-1))
    return float(np.max(err / np.sqrt(np.mean(np.asarray(ref, np.float64) ** 2, axis=-1))))


def stream(kernel, controls: list[np.ndarray], hop: int, rng: np.random.Generator) -> np.ndarray:
    """Render `[voices, frames * hop]` float32 from per-frame `controls` `[voices, frames, ...]`
    in host blocks of 1 … 2*hop samples (`tests.streaming.render_in_blocks`)."""
    frames = controls[0].shape[1]
    wide = [np.asarray(c, dtype=np.float64) for c in controls]
    return render_in_blocks(kernel, wide, frames * hop, random_blocks(rng, 1, 2 * hop)).astype(np.float32)


def harmonic_controls(
    rng: np.random.Generator, voices: int, frames: int, harmonics: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 controls: log-f0 glides and jumps over 50 … 4000 Hz, random amplitudes and
    distributions with silent frames, an all-zero distribution and f0 past Nyquist."""
    anchors = np.sort(rng.choice(np.arange(1, frames - 1), size=min(6, frames - 2), replace=False))
    knots = np.concatenate([[0], anchors, [frames - 1]])
    log_f0 = np.stack(
        [np.interp(np.arange(frames), knots, rng.uniform(np.log(50), np.log(4000), knots.size)) for _ in range(voices)]
    )
    f0 = np.exp(log_f0)
    f0[0, frames // 2 : frames // 2 + 3] = 30000.0
    amplitude = rng.uniform(0.0, 1.0, (voices, frames))
    amplitude[:, rng.integers(0, frames, 3)] = 0.0
    dist = rng.uniform(0.0, 1.0, (voices, frames, harmonics)) ** 3
    dist[rng.uniform(size=dist.shape) < 0.2] = 0.0
    dist[-1, frames // 3] = 0.0
    return f0.astype(np.float32), amplitude.astype(np.float32), dist.astype(np.float32)


def torch_harmonic(f0, amplitude, dist, sample_rate, hop) -> np.ndarray:
    controls = (torch.from_numpy(c) for c in (f0, amplitude, dist))
    y = synth.harmonic_synth(*controls, sample_rate, hop)
    assert y.dtype == torch.float32
    return y.numpy()


# Harmonic oscillator bank ------------------------------------------------------------


@pytest.mark.parametrize(
    "sample_rate, hop, harmonics, frames",
    [(48000, 160, 64, 150), (44100, 147, 50, 120), (16000, 64, 100, 160), (48000, 160, 1, 40)],
)
def test_harmonic_matches_streaming_kernel(sample_rate, hop, harmonics, frames):
    rng = np.random.default_rng(sample_rate + harmonics)
    f0, amplitude, dist = harmonic_controls(rng, 4, frames, harmonics)
    ref = stream(HarmonicOscillator(4, harmonics, sample_rate, hop), [f0, amplitude, dist], hop, rng)
    y = torch_harmonic(f0, amplitude, dist, sample_rate, hop)
    assert y.shape == ref.shape
    assert relative_rms(y, ref) < TOLERANCE


def test_harmonic_phase_does_not_drift_over_seconds():
    """High glides over 3 s at 48 kHz: a float32 phase would be off by far more than 1e-5."""
    sample_rate, hop, frames = 48000, 160, 900
    t = np.arange(frames) / frames
    f0 = np.stack([3000 + 900 * np.sin(2 * np.pi * 3 * t), 3999.7 - 1000 * t]).astype(np.float32)
    amplitude = np.full((2, frames), 0.5, np.float32)
    dist = np.tile(np.array([1.0, 0.5, 0.25, 0.125, 0.0, 0.3], np.float32), (2, frames, 1))
    rng = np.random.default_rng(1)
    ref = stream(HarmonicOscillator(2, 6, sample_rate, hop), [f0, amplitude, dist], hop, rng)
    y = torch_harmonic(f0, amplitude, dist, sample_rate, hop)
    assert relative_rms(y[:, -48000:], ref[:, -48000:]) < TOLERANCE


def test_renormalisation_zeroes_harmonics_at_or_above_nyquist():
    """f0 = 1000 Hz at 48 kHz: harmonics 1 … 23 sound (24 * f0 = Nyquist does not), each at amplitude / 23."""
    sample_rate, hop, frames, harmonics = 48000, 160, 30, 64
    f0 = np.full((1, frames), 1000.0, np.float32)
    amplitude = np.full((1, frames), 0.8, np.float32)
    dist = np.ones((1, frames, harmonics), np.float32)

    a = synth.harmonic_amplitudes(
        torch.from_numpy(f0), torch.from_numpy(amplitude), torch.from_numpy(dist), sample_rate
    ).numpy()
    np.testing.assert_allclose(a[..., :23], 0.8 / 23, rtol=1e-6)
    assert np.all(a[..., 23:] == 0.0)

    n = np.arange(frames * hop)
    phi = 2 * np.pi * 1000.0 * n / sample_rate
    expected = 0.8 / 23 * np.sin(np.arange(1, 24)[:, None] * phi).sum(axis=0)
    y = torch_harmonic(f0, amplitude, dist, sample_rate, hop)
    kernel = HarmonicOscillator(1, harmonics, sample_rate, hop)
    ref = stream(kernel, [f0, amplitude, dist], hop, np.random.default_rng(2))
    assert relative_rms(y, expected[None]) < TOLERANCE
    assert relative_rms(y, ref) < TOLERANCE


def test_harmonic_amplitudes_match_reference():
    rng = np.random.default_rng(3)
    f0, amplitude, dist = harmonic_controls(rng, 3, 50, 40)
    a = synth.harmonic_amplitudes(
        torch.from_numpy(f0).double(), torch.from_numpy(amplitude).double(), torch.from_numpy(dist).double(), 22050
    ).numpy()
    ref = harmonic_amplitudes(f0, amplitude, dist, 22050)
    np.testing.assert_allclose(a, ref, rtol=1e-12, atol=1e-15)
    assert np.all(a[np.arange(1, 41) * f0[..., None].astype(np.float64) >= 11025] == 0.0)


# Filtered noise ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bands, sample_rate, band_nyquist_hz",
    [(65, 48000, None), (65, 48000, 22050), (65, 44100, 24000), (65, 96000, 24000), (33, 16000, None),
     (64, 32000, 16000.0), (129, 44100, 8000), (2, 48000, None)],
)
def test_noise_filter_matrix_matches_reference(bands, sample_rate, band_nyquist_hz):
    ref = noise_filter_matrix(bands, sample_rate, band_nyquist_hz)
    m = synth.noise_filter_matrix(bands, sample_rate, band_nyquist_hz).numpy()
    assert m.shape == ref.shape
    np.testing.assert_allclose(m, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "sample_rate, hop, bands, band_nyquist_hz",
    [(48000, 160, 65, None), (48000, 160, 65, 22050), (44100, 147, 65, 24000), (96000, 320, 65, 24000),
     (16000, 64, 33, None)],
)
def test_filtered_noise_matches_streaming_kernel(sample_rate, hop, bands, band_nyquist_hz):
    rng = np.random.default_rng(hop + bands)
    voices, frames, seed = 3, 60, 11
    mags = (rng.uniform(0.0, 1.0, (voices, frames, bands)) ** 2).astype(np.float32)
    mags[0, 10:14] = 0.0
    kernel = FilteredNoise(voices, bands, sample_rate, hop, seed=seed, band_nyquist_hz=band_nyquist_hz)
    ref = stream(kernel, [mags], hop, rng)
    noise = np.stack([white_noise(frames * hop, seed, v) for v in range(voices)]).astype(np.float32)
    y = synth.filtered_noise(
        torch.from_numpy(mags), sample_rate, hop, noise=torch.from_numpy(noise), band_nyquist_hz=band_nyquist_hz
    )
    assert y.dtype == torch.float32 and y.shape == (voices, frames * hop)
    assert relative_rms(y.numpy(), ref) < TOLERANCE


def test_filtered_noise_draws_uniform_noise_when_none_given():
    mags = torch.ones(2, 40, 65)
    torch.manual_seed(0)
    y = synth.filtered_noise(mags, 48000, 160)
    torch.manual_seed(0)
    noise = torch.rand(2, 40 * 160) * 2 - 1
    np.testing.assert_array_equal(y.numpy(), synth.filtered_noise(mags, 48000, 160, noise=noise).numpy())
    assert noise.min() >= -1 and noise.max() < 1


# Reverb ------------------------------------------------------------------------------


def stream_reverb(audio: np.ndarray, irs: list[np.ndarray], mixes: list[float], rng: np.random.Generator) -> np.ndarray:
    out = np.zeros_like(audio, dtype=np.float32)
    for row, (x, h, mix) in enumerate(zip(audio.astype(np.float32), irs, mixes)):
        conv = Convolver(h, max_block=1024, mix=mix)
        pos = 0
        while pos < x.size:
            n = min(x.size - pos, int(rng.integers(1, 1025)))
            conv.process(x[pos : pos + n], out[row, pos : pos + n])
            pos += n
    return out


def decaying_ir(rng: np.random.Generator, taps: int, sample_rate: int, rt60_s: float) -> np.ndarray:
    t = np.arange(taps) / sample_rate
    return (rng.standard_normal(taps) * 10 ** (-3 * t / rt60_s) * 0.05).astype(np.float32)


def test_reverb_matches_convolver_shared_ir():
    rng = np.random.default_rng(5)
    audio = (rng.standard_normal((2, 24000)) * 0.3).astype(np.float32)
    h = decaying_ir(rng, 9000, 48000, 0.4)
    ref = stream_reverb(audio, [h, h], [0.35, 0.35], rng)
    y = synth.reverb(torch.from_numpy(audio), torch.from_numpy(h), 0.35)
    assert relative_rms(y.numpy(), ref) < TOLERANCE


def test_reverb_matches_convolver_per_row_ir_longer_than_audio():
    rng = np.random.default_rng(6)
    audio = (rng.standard_normal((2, 12000)) * 0.3).astype(np.float32)
    irs = np.stack([decaying_ir(rng, 20000, 48000, 1.5), decaying_ir(rng, 20000, 48000, 0.8)])
    mixes = [0.25, 1.0]
    ref = stream_reverb(audio, list(irs), mixes, rng)
    y = synth.reverb(torch.from_numpy(audio), torch.from_numpy(irs), torch.tensor(mixes))
    assert relative_rms(y.numpy(), ref) < TOLERANCE


# Gradients ---------------------------------------------------------------------------


def test_gradients_are_finite_and_nonzero():
    rng = np.random.default_rng(7)
    f0, amplitude, dist = (torch.from_numpy(c).requires_grad_() for c in harmonic_controls(rng, 3, 20, 16))
    mags = torch.rand(3, 20, 65, requires_grad=True)
    h = torch.from_numpy(decaying_ir(rng, 500, 16000, 0.2)).requires_grad_()
    mix = torch.tensor(0.4, requires_grad=True)
    audio = synth.harmonic_synth(f0, amplitude, dist, 16000, 64) + synth.filtered_noise(mags, 16000, 64)
    y = synth.reverb(audio, h, mix)
    (y * torch.randn_like(y)).sum().backward()
    for name, p in [("f0", f0), ("amplitude", amplitude), ("distribution", dist), ("magnitudes", mags),
                    ("impulse_response", h), ("mix", mix)]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_gradients_finite_when_nothing_sounds():
    """All-zero distributions and f0 past Nyquist hit the renormalisation guard, not NaN."""
    f0 = torch.tensor([[100.0, 30000.0, 30000.0, 200.0, 210.0]], requires_grad=True)
    amplitude = torch.ones(1, 5, requires_grad=True)
    dist = torch.zeros(1, 5, 8)
    dist[0, 3:] = 1.0
    dist.requires_grad_()
    synth.harmonic_synth(f0, amplitude, dist, 16000, 32).pow(2).sum().backward()
    for p in (f0, amplitude, dist):
        assert torch.isfinite(p.grad).all()
    assert amplitude.grad[0, 3] != 0 and f0.grad[0, 4] != 0


def test_gradcheck_float64():
    """Analytic gradients of the hand-written backward equal finite differences."""
    gen = torch.Generator().manual_seed(8)
    f0 = torch.tensor([[30.0, 45.0, 61.0, 52.0], [101.0, 93.0, 111.0, 123.0]], dtype=torch.float64, requires_grad=True)
    amplitude = torch.rand(2, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    dist = torch.rand(2, 4, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, a, d: synth.harmonic_synth(f, a, d, 1000, 8), (f0, amplitude, dist))
    mags = torch.rand(2, 4, 9, dtype=torch.float64, generator=gen, requires_grad=True)
    noise = torch.rand(2, 32, dtype=torch.float64, generator=gen) * 2 - 1
    assert torch.autograd.gradcheck(lambda m: synth.filtered_noise(m, 1000, 8, noise=noise), (mags,))
    x = torch.randn(2, 40, dtype=torch.float64, generator=gen, requires_grad=True)
    h = torch.randn(2, 15, dtype=torch.float64, generator=gen, requires_grad=True)
    mix = torch.rand(2, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(synth.reverb, (x, h, mix))


def test_harmonic_chunking_does_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(9)
    controls = [torch.from_numpy(c).double().requires_grad_() for c in harmonic_controls(rng, 2, 12, 10)]
    y = synth.harmonic_synth(*controls, 8000, 32)
    grads = torch.autograd.grad(y.square().sum(), controls)
    monkeypatch.setattr(synth, "_CHUNK_ELEMENTS", 1)
    y1 = synth.harmonic_synth(*controls, 8000, 32)
    grads1 = torch.autograd.grad(y1.square().sum(), controls)
    torch.testing.assert_close(y1, y, rtol=0, atol=1e-13)
    for g, g1 in zip(grads, grads1):
        torch.testing.assert_close(g1, g, rtol=1e-10, atol=1e-10 * float(g.abs().max()))


def test_phase_starts_at_zero():
    y = synth.harmonic_synth(torch.full((1, 3), 440.0), torch.ones(1, 3), torch.ones(1, 3, 4), 48000, 160)
    assert y[0, 0] == 0.0
    omega = 2 * math.pi * 440.0 / 48000
    expected = sum(math.sin(k * omega) for k in range(1, 5)) / 4
    assert abs(float(y[0, 1]) - expected) < 1e-6
