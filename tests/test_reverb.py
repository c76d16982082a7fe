import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from timbrel.engine.dsp import Convolver, reverb
from timbrel.engine.realtime.kernels.convolution import plan_levels
from timbrel.engine.realtime.kernels.fft import FFTTables, RealFFT, butterflies, pack_real

SR = 48000


def decaying_ir(taps: int, seed: int = 0) -> np.ndarray:
    """Noise under an exponential decay to -60 dB, unit energy, like a measured room."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal(taps) * np.exp(-6.9 * np.arange(taps) / max(taps, 1))
    return h / np.sqrt(np.sum(h**2))


def noise_input(samples: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, samples).astype(np.float32)


def stream(conv: Convolver, x: np.ndarray, sizes) -> np.ndarray:
    out = np.zeros_like(x)
    done = 0
    for size in sizes:
        if done == len(x):
            break
        n = min(int(size), len(x) - done)
        conv.process(x[done : done + n], out[done : done + n])
        done += n
    assert done == len(x)
    return out


def random_sizes(seed: int, low: int = 1, high: int = 4096):
    rng = np.random.default_rng(seed)
    while True:
        yield int(rng.integers(low, high + 1))


def constant_sizes(n: int):
    while True:
        yield n


# --- FFT ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 4, 8, 32, 256, 2048, 16384])
def test_real_fft_and_inverse_match_numpy(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n)
    spec = np.zeros((2, n // 2 + 1))
    for fft in (RealFFT(n), RealFFT(n, FFTTables(4 * max(n, 16)))):
        fft.forward(x, spec)
        np.testing.assert_allclose(spec[0] + 1j * spec[1], np.fft.rfft(x), rtol=0, atol=1e-12 * np.sqrt(n))
        ref = np.fft.rfft(rng.standard_normal(n))
        y = np.zeros(n)
        fft.inverse(np.stack([ref.real, ref.imag]), y)
        np.testing.assert_allclose(y, np.fft.irfft(ref, n), rtol=0, atol=1e-14 * np.sqrt(n))


def test_fft_split_into_unit_ranges_equals_whole_transform():
    m, tables = 1024, FFTTables(2048)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(2 * m)
    whole, parts = np.zeros((2, m)), np.zeros((2, m))
    pack_real(x, 0, 2 * m - 1, whole, 0, tables.bitrev, 0, 0, m)
    parts[:] = whole
    total = 10 * m // 2
    butterflies(whole, 0, tables.twiddles, 10, 0, total)
    u = 0
    while u < total:
        step = int(rng.integers(1, 700))
        butterflies(parts, 0, tables.twiddles, 10, u, min(total, u + step))
        u += step
    np.testing.assert_array_equal(parts, whole)
    np.testing.assert_allclose(whole[0] + 1j * whole[1], np.fft.fft(x[0::2] + 1j * x[1::2]), atol=1e-11)


def test_fft_rejects_sizes_that_are_not_powers_of_two():
    with pytest.raises(ValueError, match="power of two"):
        FFTTables(96)
    with pytest.raises(ValueError, match="power of two"):
        RealFFT(64, FFTTables(32))


# --- offline reference -------------------------------------------------------------------


def test_offline_reverb_equals_direct_convolution():
    rng = np.random.default_rng(4)
    h = rng.standard_normal(37)
    audio = rng.uniform(-1, 1, (3, 2000))
    y = reverb(audio, h, 0.3)
    assert y.dtype == np.float32 and y.shape == audio.shape
    for v in range(3):
        wet = np.convolve(audio[v], h)[:2000]
        np.testing.assert_allclose(y[v], 0.7 * audio[v] + 0.3 * wet, atol=1e-6, rtol=0)
    np.testing.assert_allclose(reverb(audio[1], h, 0.3), y[1], atol=1e-6, rtol=0)
    long_h = rng.standard_normal(5000)
    np.testing.assert_allclose(reverb(audio[0], long_h), np.convolve(audio[0], long_h)[:2000], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "audio, ir, mix, message",
    [
        (np.zeros(10), np.ones(3), -0.1, "mix"),
        (np.zeros(10), np.ones(3), 1.5, "mix"),
        (np.zeros(10), np.ones(3), float("nan"), "mix"),
        (np.zeros(10), np.zeros(0), 0.5, "non-empty"),
        (np.zeros(10), np.ones((2, 3)), 0.5, "1-D"),
        (np.array([0.0, np.nan]), np.ones(3), 0.5, "audio contains NaN"),
        (np.zeros(10), np.array([1.0, np.inf]), 0.5, "impulse_response contains NaN or inf"),
        (np.zeros((2, 2, 10)), np.ones(3), 0.5, "voices, samples"),
    ],
)
def test_offline_reverb_rejects_bad_input(audio, ir, mix, message):
    with pytest.raises(ValueError, match=message):
        reverb(audio, ir, mix)


# --- streaming ---------------------------------------------------------------------------


def test_level_plan_covers_the_ir_and_grows_logarithmically():
    for taps in (129, 1024, 4800, 48000, 144000, 10 * SR):
        levels = plan_levels(taps, 128)
        start = 128
        for size, first, parts in levels:
            assert first == start and (size == 128 or first >= 2 * size)
            start += size * parts
        assert start >= taps > start - levels[-1][0]
    assert sum(p for _, _, p in plan_levels(144000, 128)) <= 40
    assert sum(p for _, _, p in plan_levels(10 * SR, 128)) <= 60
    assert plan_levels(144000, 128, max_levels=1) == [(128, 128, 1124)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_offline_for_random_blocks_with_a_3_s_ir(seed):
    h = decaying_ir(3 * SR)
    x = noise_input(4 * SR, seed)
    ref = reverb(x, h, 0.7)
    y = stream(Convolver(h, 4096, mix=0.7), x, random_sizes(seed))
    assert np.abs(y - x).max() > 0.1
    np.testing.assert_allclose(y, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("sizes", [(1, 1), (1, 64), (128, 128), (100, 300)])
def test_streaming_equals_offline_for_small_blocks(sizes):
    h = decaying_ir(SR // 2, seed=5)
    x = noise_input(SR, seed=6)
    y = stream(Convolver(h, 512), x, random_sizes(7, *sizes))
    np.testing.assert_allclose(y, reverb(x, h), atol=1e-6, rtol=0)


@pytest.mark.parametrize("taps", [1, 7, 128, 129, 1024, 1025, 4097])
def test_streaming_equals_offline_for_short_irs(taps):
    h = decaying_ir(taps, seed=taps)
    x = noise_input(20000, seed=taps)
    for seed in range(3):
        y = stream(Convolver(h, 4096, mix=0.6), x, random_sizes(seed))
        np.testing.assert_allclose(y, reverb(x, h, 0.6), atol=1e-6, rtol=0)


@pytest.mark.parametrize("options", [{"max_levels": 1}, {"base_partition": 32}, {"base_partition": 512}])
def test_other_level_layouts_equal_offline(options):
    h = decaying_ir(SR // 2, seed=8)
    x = noise_input(SR, seed=9)
    y = stream(Convolver(h, 4096, **options), x, random_sizes(10))
    np.testing.assert_allclose(y, reverb(x, h), atol=1e-6, rtol=0)


def test_zero_latency_impulse_gives_the_ir_from_the_first_sample():
    h = decaying_ir(10000, seed=11)
    conv = Convolver(h, 64)
    assert conv.latency_samples == 0
    x = np.zeros(12000, dtype=np.float32)
    x[0] = 1.0
    y = stream(conv, x, constant_sizes(1))
    np.testing.assert_allclose(y[:10000], h, atol=1e-6, rtol=0)
    assert np.abs(y[10000:]).max() < 1e-6


def test_mix_zero_is_exactly_dry():
    x = noise_input(30000)
    y = stream(Convolver(decaying_ir(20000), 4096, mix=0.0), x, random_sizes(12))
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(reverb(x, decaying_ir(20000), 0.0), x)


def test_mix_changes_between_blocks():
    h = decaying_ir(6000, seed=13)
    x = noise_input(20000)
    wet = reverb(x, h, 1.0).astype(np.float64)
    conv = Convolver(h, 4096)
    rng = np.random.default_rng(14)
    y, expected, done = np.zeros_like(x), np.zeros(len(x)), 0
    while done < len(x):
        n = min(int(rng.integers(1, 3000)), len(x) - done)
        conv.mix = mix = float(rng.uniform(0, 1))
        conv.process(x[done : done + n], y[done : done + n])
        expected[done : done + n] = (1 - mix) * x[done : done + n] + mix * wet[done : done + n]
        done += n
    np.testing.assert_allclose(y, expected, atol=1e-6, rtol=0)


def test_in_place_processing():
    h = decaying_ir(9000, seed=15)
    x = noise_input(25000)
    ref = reverb(x, h, 0.5)
    buf = x.copy()
    conv = Convolver(h, 4096, mix=0.5)
    done = 0
    for n in random_sizes(16):
        n = min(n, len(buf) - done)
        conv.process(buf[done : done + n], buf[done : done + n])
        done += n
        if done == len(buf):
            break
    np.testing.assert_allclose(buf, ref, atol=1e-6, rtol=0)


def test_reset_restores_the_initial_state():
    h = decaying_ir(SR, seed=17)
    x = noise_input(2 * SR, seed=18)
    fresh = stream(Convolver(h, 4096, mix=0.8), x, random_sizes(19))
    conv = Convolver(h, 4096, mix=0.8)
    stream(conv, noise_input(SR + 777, seed=20), random_sizes(21))
    conv.reset()
    np.testing.assert_array_equal(stream(conv, x, random_sizes(22)), fresh)


def test_convolver_rejects_bad_arguments():
    h = decaying_ir(300)
    with pytest.raises(ValueError, match="non-empty"):
        Convolver(np.zeros(0), 128)
    with pytest.raises(ValueError, match="NaN"):
        Convolver(np.array([1.0, np.nan]), 128)
    with pytest.raises(ValueError, match="mix"):
        Convolver(h, 128, mix=1.1)
    with pytest.raises(ValueError, match="max_block"):
        Convolver(h, 0)
    with pytest.raises(ValueError, match="base_partition"):
        Convolver(h, 128, base_partition=100)
    conv = Convolver(h, 128)
    with pytest.raises(ValueError, match="mix"):
        conv.mix = -0.5
    with pytest.raises(ValueError, match="max_block"):
        conv.process(np.zeros(129, np.float32), np.zeros(129, np.float32))
    with pytest.raises(TypeError, match="float32"):
        conv.process(np.zeros(64), np.zeros(64))


def test_process_does_not_allocate_per_block():
    """NRT allocations inside the kernel must not depend on how many blocks it renders.

    Runs in a subprocess because numba only counts allocations when NUMBA_NRT_STATS is set
    before it starts.
    """
    script = textwrap.dedent(
        """
        import numba, numpy as np
        from numba.core.runtime import rtsys
        from timbrel.engine.realtime.kernels import convolution as cv

        @numba.njit
        def drive(sizes, x, out, mix, state, lv, head, hist, scratch, ring_in, ring_out, spectra, rev, tw, rtw):
            pos = 0
            for n in sizes:
                cv._process(x[pos:pos + n], out[pos:pos + n], n, mix, state, lv, head, hist, scratch,
                            ring_in, ring_out, spectra, rev, tw, rtw)
                pos += n

        conv = cv.Convolver(np.random.default_rng(0).standard_normal(60000) * 0.01, 4096)
        arrays = conv._buffers
        x = np.random.default_rng(1).uniform(-1, 1, 400000).astype(np.float32)
        out = np.zeros_like(x)
        drive(np.ones(1, np.int64), x, out, 0.5, *arrays)
        counts = []
        for blocks in (1, 400):
            sizes = np.random.default_rng(blocks).integers(1, 1000, blocks)
            before = rtsys.get_allocation_stats().alloc
            drive(sizes, x, out, 0.5, *arrays)
            counts.append(rtsys.get_allocation_stats().alloc - before)
        print(counts[0], counts[1])
        """
    )
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    one, many = map(int, result.stdout.split())
    assert one == many
