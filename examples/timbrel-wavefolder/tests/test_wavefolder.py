"""Reference behaviour of the example effects: formulas, level counts, hold timing, streaming."""

import numpy as np
import pytest

from timbrel_wavefolder import BitCrusher, WaveFolder
from timbrel_wavefolder.kernels import SHAPES

RATE = 48000


def steady(effect_class, **params):
    """An effect with `params` set; `prepare` (inside the call API) snaps them, so nothing glides."""
    effect = effect_class()
    for key, value in params.items():
        effect.params.set(key, value)
    return effect


def sine_fold(u):
    return np.sin(0.5 * np.pi * u)


def triangle_fold(u):
    return 1.0 - np.abs(np.mod(u + 1.0, 4.0) - 2.0)


@pytest.mark.parametrize("shape, curve", [("sine", sine_fold), ("triangle", triangle_fold)])
def test_folder_transfer_function_matches_its_formula(shape, curve):
    x = np.linspace(-1.0, 1.0, 4001).astype(np.float32)
    drive_db, bias, output_db = 15.0, 0.3, -6.0
    out = steady(WaveFolder, drive_db=drive_db, symmetry=bias, shape=SHAPES.index(shape), mix=1.0,
                 output_db=output_db)(x, RATE)
    drive, gain = 10 ** (drive_db / 20), 10 ** (output_db / 20)
    expected = gain * (curve(drive * x.astype(np.float64) + bias) - curve(bias))
    np.testing.assert_allclose(out[0], expected, atol=2e-6)
    np.testing.assert_array_equal(out[0], out[1])
    assert np.count_nonzero(np.diff(np.sign(np.diff(out[0])))) > 4, "a 15 dB drive folds the ramp back several times"


def test_folder_keeps_silence_silent_at_any_symmetry():
    out = steady(WaveFolder, drive_db=30, symmetry=-0.7)(np.zeros(256, np.float32), RATE)
    assert not out.any()


def test_folder_parameter_changes_ramp_across_the_next_block():
    folder = steady(WaveFolder, mix=0.0, output_db=0.0)
    folder.prepare(RATE, 64)
    bus = np.full((2, 64), 0.5, np.float32)
    folder.process(np.zeros(64, np.float32), bus, np.zeros(0, np.int32))
    assert np.all(bus == 0.5)
    folder.params.set("output_db", -20.0)
    bus[:] = 0.5
    folder.process(np.zeros(64, np.float32), bus, np.zeros(0, np.int32))
    reached = 10 ** (folder.params.values[folder.params.index("output_db")] / 20)
    expected = 0.5 * (1.0 + (reached - 1.0) * np.arange(1, 65) / 64)
    np.testing.assert_allclose(bus[0], expected, rtol=1e-6)
    assert 0.1 < reached < 1.0, "the gain glides (20 ms), it does not jump"


@pytest.mark.parametrize("bits", [1, 2, 3, 8])
def test_crusher_has_two_to_the_bits_levels(bits):
    x = np.linspace(-1.0, 1.0, 20001).astype(np.float32)
    out = steady(BitCrusher, bits=bits, downsample=1, mix=1.0)(x, RATE)[0].astype(np.float64)
    levels = np.unique(out)
    assert levels.size == 2**bits
    scale = 2.0 ** (bits - 1)
    np.testing.assert_array_equal(levels, np.arange(-scale, scale) / scale)
    assert np.max(np.abs(out - x)) <= 1.0 / scale, "each sample lands on a level next to it"


def test_crusher_at_sixteen_bits_keeps_sixteen_bit_audio():
    rng = np.random.default_rng(1)
    x = (rng.integers(-32768, 32768, 3000) / 32768).astype(np.float32)
    out = steady(BitCrusher, bits=16, downsample=1, mix=1.0)(x, RATE)
    np.testing.assert_array_equal(out[0], x)


@pytest.mark.parametrize("factor, taken_at", [(4, [0, 4, 8, 12, 16]), (2.5, [0, 3, 5, 8, 10, 13, 15, 18])])
def test_crusher_sample_hold_timing(factor, taken_at):
    x = (np.arange(1, 21) / 32).astype(np.float32)  # distinct, exact at 16 bits
    out = steady(BitCrusher, bits=16, downsample=factor, mix=1.0)(x, RATE, block=7)[0]
    held_from = np.maximum.accumulate(np.isin(np.arange(20), taken_at) * np.arange(20))
    np.testing.assert_array_equal(out, x[held_from])


@pytest.mark.parametrize("effect_class, params", [
    (WaveFolder, {"drive_db": 36, "symmetry": 0.5}),
    (BitCrusher, {"bits": 2, "downsample": 7}),
])
def test_mix_zero_is_transparent(effect_class, params):
    x = np.random.default_rng(2).uniform(-1, 1, (2, 5000)).astype(np.float32)
    np.testing.assert_array_equal(steady(effect_class, mix=0.0, **params)(x, RATE), x)


@pytest.mark.parametrize("effect_class, params", [
    (WaveFolder, {"drive_db": 20, "symmetry": 0.2, "shape": 1, "mix": 0.7, "output_db": -3}),
    (BitCrusher, {"bits": 5, "downsample": 3.7, "mix": 0.8}),
])
def test_streaming_in_any_blocks_equals_the_whole_buffer(effect_class, params):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 9000)).astype(np.float32)
    whole = steady(effect_class, **params)
    whole.prepare(RATE, x.shape[1])
    expected = x.copy()
    whole.process(np.zeros(x.shape[1], np.float32), expected, np.zeros(0, np.int32))
    streamed = steady(effect_class, **params)
    streamed.prepare(RATE, 512)
    out, start = x.copy(), 0
    while start < x.shape[1]:
        stop = min(x.shape[1], start + int(rng.integers(1, 513)))
        block = out[:, start:stop]  # a strided view, as a host slicing its own buffer would pass
        streamed.process(np.zeros(stop - start, np.float32), block, np.zeros(0, np.int32))
        start = stop
    np.testing.assert_array_equal(out, expected)
    assert not np.array_equal(out, x)


def test_decibel_parameters_say_so_in_their_ids():
    for effect_class in (WaveFolder, BitCrusher):
        for p in effect_class.parameters:
            assert (p.unit == "dB") == p.id.endswith("_db"), p.id
