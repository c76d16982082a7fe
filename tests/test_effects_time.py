"""Built-in time and dynamics effects (compressor, limiter, delay, chorus) against references.

References are computed here from the textbook formulas (the compressor's static curve,
the Catmull-Rom interpolation kernel, the one-pole low-pass), never by calling the code
under test.
"""

import tracemalloc

import numpy as np
import pytest

from tests.streaming import random_blocks
from timbrel.engine.plugin_api import Effect
from timbrel.engine.realtime.kernels import delay_line as dl
from timbrel.engine.realtime.kernels import dynamics as dk
from timbrel.engine.realtime.kernels.dynamics import gain_computer_db
from timbrel.plugin.effects.chorus import Chorus
from timbrel.plugin.effects.delay import Delay
from timbrel.plugin.effects.dynamics import Compressor, Limiter

SR = 48000


def make(kind: type[Effect], **params) -> Effect:
    effect = kind()
    for key, value in params.items():
        effect.params.set(key, value)
    return effect


def stereo(x: np.ndarray) -> np.ndarray:
    return np.stack([x, x]).astype(np.float32)


def impulse(samples: int, at: int, amplitude: float = 1.0) -> np.ndarray:
    x = np.zeros(samples, dtype=np.float32)
    x[at] = amplitude
    return x


def sine(hz: float, seconds: float, amplitude: float = 1.0) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def stream(effect: Effect, audio: np.ndarray, sizes, max_block: int = 4096, changes=None, prepare=True) -> np.ndarray:
    """Run stereo `audio` `[2, samples]` through `effect` the way the host does: blocks of
    `sizes()` samples, each a view of a `[2, max_block]` bus. `changes` maps a sample
    index (a block boundary) to parameter settings applied just before that block."""
    if prepare:
        effect.prepare(SR, max_block)
    bus = np.zeros((2, max_block), dtype=np.float32)
    silence = np.zeros(max_block, dtype=np.float32)
    none = np.zeros(0, dtype=np.int32)
    out = np.zeros_like(audio)
    done = 0
    while done < audio.shape[1]:
        for key, value in (changes or {}).get(done, {}).items():
            effect.params.set(key, value)
        n = min(int(sizes()), max_block, audio.shape[1] - done)
        view = bus[:, :n]
        view[:] = audio[:, done : done + n]
        effect.process(silence[:n], view, none)
        out[:, done : done + n] = view
        done += n
    return out


def level_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.max(np.abs(x)))


# --- compressor --------------------------------------------------------------------------


def reference_curve_db(x: float, threshold: float, ratio: float, knee: float) -> float:
    """Giannoulis, Massberg & Reiss (2012), eq. 4."""
    if 2 * (x - threshold) < -knee:
        return x
    if 2 * abs(x - threshold) <= knee and knee > 0:
        return x + (1 / ratio - 1) * (x - threshold + knee / 2) ** 2 / (2 * knee)
    return threshold + (x - threshold) / ratio


@pytest.mark.parametrize("threshold, ratio, knee", [(-30.0, 4.0, 12.0), (-18.0, 10.0, 0.0), (-40.0, 2.0, 24.0)])
def test_compressor_static_curve_on_steady_sines(threshold, ratio, knee):
    makeup = 3.0
    for level in range(-60, 1, 4):
        comp = make(Compressor, threshold_db=threshold, ratio=ratio, knee_db=knee, makeup_db=makeup,
                    attack_ms=0.1, release_ms=2000.0)
        out = comp(sine(1000.0, 1.0, 10 ** (level / 20)), SR, block=512)
        measured = level_db(out[:, -SR // 10 :])
        assert measured == pytest.approx(reference_curve_db(level, threshold, ratio, knee) + makeup, abs=0.2), level


def test_compressor_rms_detector_follows_the_curve_at_the_sine_rms_level():
    threshold, ratio, knee = -30.0, 4.0, 12.0
    for level in range(-50, 1, 5):
        comp = make(Compressor, threshold_db=threshold, ratio=ratio, knee_db=knee, detector=1,
                    attack_ms=0.5, release_ms=2000.0)
        out = comp(sine(1000.0, 1.0, 10 ** (level / 20)), SR, block=512)
        rms_in = level - 10 * np.log10(2)
        rms_out = 10 * np.log10(np.mean(out[0, -SR // 10 :].astype(np.float64) ** 2))
        assert rms_out == pytest.approx(reference_curve_db(rms_in, threshold, ratio, knee), abs=0.2), level


def test_static_curve_function_matches_the_formula():
    levels = np.linspace(-80, 10, 181)
    for threshold, ratio, knee in [(-20.0, 4.0, 0.0), (-20.0, 4.0, 10.0), (-6.0, 20.0, 24.0)]:
        expected = [reference_curve_db(x, threshold, ratio, knee) for x in levels]
        measured = [gain_computer_db(x, threshold, ratio, knee) for x in levels]
        np.testing.assert_allclose(measured, expected, atol=1e-12)


@pytest.mark.parametrize("attack_ms, release_ms", [(5.0, 100.0), (30.0, 500.0)])
def test_compressor_attack_and_release_time_constants(attack_ms, release_ms):
    """A 100 Hz square wave (steady |x|) steps -40 -> 0 -> -40 dBFS; threshold -30 dB, ratio 10:
    the gain, out / in per sample, moves 0 -> -27 -> 0 dB, 63% of the way in the set times."""
    quiet, loud = int(0.2 * SR), int((1.0 + 10 * attack_ms / 1000) * SR)
    level = np.r_[np.full(quiet, 0.01), np.full(loud, 1.0), np.full(SR, 0.01)]
    square = level * np.where(np.arange(level.size) % 480 < 240, 1.0, -1.0)
    comp = make(Compressor, threshold_db=-30.0, ratio=10.0, knee_db=0.0, attack_ms=attack_ms, release_ms=release_ms)
    gain = 20 * np.log10(comp(square, SR, block=256)[0] / square)
    full = -27.0
    assert gain[quiet - 1] == pytest.approx(0.0, abs=1e-6)
    assert gain[quiet + loud - 1] == pytest.approx(full, abs=0.01)
    attack = np.argmax(gain[quiet:] <= 0.632 * full) / SR * 1000
    release = np.argmax(gain[quiet + loud :] >= 0.368 * full) / SR * 1000
    assert attack == pytest.approx(attack_ms, rel=0.2)
    assert release == pytest.approx(release_ms, rel=0.2)


def test_compressor_reports_gain_reduction_and_mixes_in_parallel():
    comp = make(Compressor, threshold_db=-30.0, ratio=10.0, knee_db=0.0, attack_ms=1.0)
    comp(np.full(SR // 2, 1.0), SR, block=256)
    assert comp.gain_reduction_db == pytest.approx(27.0, abs=0.01)
    parallel = make(Compressor, threshold_db=-30.0, ratio=10.0, knee_db=0.0, attack_ms=1.0, mix=0.5, makeup_db=6.0)
    out = parallel(np.full(SR // 2, 1.0), SR, block=256)
    assert out[0, -1] == pytest.approx(0.5 + 0.5 * 10 ** ((6.0 - 27.0) / 20), rel=1e-4)
    quiet = make(Compressor, threshold_db=-30.0)
    x = sine(300.0, 0.3, 0.01)
    np.testing.assert_allclose(quiet(x, SR)[0], x, rtol=1e-6)


# --- limiter -----------------------------------------------------------------------------


def loud_material(seconds: float, seed: int) -> np.ndarray:
    """Stereo noise with bursts and isolated spikes far over full scale, and a NaN and an inf."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = rng.standard_normal((2, n)) * np.repeat(rng.uniform(0.05, 4.0, (2, n // 480 + 1)), 480, axis=1)[:, :n]
    spikes = rng.integers(0, n, 200)
    x[rng.integers(0, 2, 200), spikes] = rng.uniform(-60, 60, 200)
    x[0, n // 3], x[1, n // 2] = np.nan, -np.inf
    return x.astype(np.float32)


@pytest.mark.parametrize("ceiling_db, lookahead_ms, release_ms", [(-1.0, 1.5, 100.0), (-6.0, 0.0, 10.0), (-0.1, 5.0, 1.0)])
def test_limiter_never_exceeds_the_ceiling(ceiling_db, lookahead_ms, release_ms):
    limiter = make(Limiter, ceiling_db=ceiling_db, lookahead_ms=lookahead_ms, release_ms=release_ms)
    out = limiter(loud_material(2.0, seed=int(-ceiling_db * 10)), SR, block=256)
    assert np.all(np.isfinite(out))
    assert np.max(np.abs(out.astype(np.float64))) <= 10 ** (ceiling_db / 20)
    assert limiter.gain_reduction_db > 0


def test_limiter_latency_is_the_lookahead_and_quiet_audio_passes_untouched():
    limiter = make(Limiter, lookahead_ms=1.5)
    x = impulse(4800, 1000, 0.5)
    out = limiter(x, SR, block=128)
    assert limiter.latency_samples == round(1.5 * SR / 1000) == 72
    np.testing.assert_array_equal(out[0], np.roll(x, 72))
    np.testing.assert_array_equal(out[1], np.roll(x, 72))


def test_limiter_turns_a_loud_sine_down_smoothly_rather_than_clipping_it():
    limiter = make(Limiter, ceiling_db=-1.0, lookahead_ms=2.0, release_ms=50.0)
    x = sine(1000.0, 0.5, 4.0)
    out = limiter(x, SR, block=128)
    latency = limiter.latency_samples
    tail = slice(SR // 4, None)
    delayed = x[tail.start - latency : x.size - latency]
    loud = np.abs(delayed) > 0.5
    gain = out[0, tail][loud] / delayed[loud]
    assert np.ptp(gain) < 1e-5
    assert gain.mean() == pytest.approx(10 ** (-1 / 20) / 4, rel=1e-4)


def test_limiter_gain_glides_down_across_the_lookahead_before_a_peak():
    limiter = make(Limiter, ceiling_db=-6.0, lookahead_ms=1.0, release_ms=100.0)
    x = np.full(2000, 0.1, dtype=np.float32)
    x[1000] = 4.0
    out = limiter(x, SR, block=64)[0].astype(np.float64)
    lookahead = limiter.latency_samples
    gain = out[lookahead:] / x[: x.size - lookahead]
    need = 10 ** (-6 / 20) / 4.0
    k = np.arange(lookahead + 1)
    np.testing.assert_allclose(gain[1000 - lookahead : 1001], 1 - (k + 1) / (lookahead + 1) * (1 - need), rtol=1e-6)
    np.testing.assert_array_equal(gain[: 1000 - lookahead], 1.0)


# --- delay -------------------------------------------------------------------------------


def catmull_rom(t: np.ndarray) -> np.ndarray:
    """The Catmull-Rom (Keys, a = -1/2) interpolation kernel."""
    t = np.abs(t)
    return np.where(t <= 1, 1.5 * t**3 - 2.5 * t**2 + 1, np.where(t < 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0))


@pytest.mark.parametrize("time_ms", [10.0, 250.0, 1999.0])
def test_delay_impulse_arrives_after_exactly_the_time(time_ms):
    delay = round(time_ms * SR / 1000)
    x = impulse(delay + 2000, 100)
    out = make(Delay, time_ms=time_ms, feedback=0.0, mix=1.0)(x, SR, block=512)
    expected = np.zeros_like(x)
    expected[100 + delay] = 1.0
    np.testing.assert_array_equal(out, stereo(expected))


@pytest.mark.parametrize("time_ms", [10.3, 10.01, 7.77])
def test_fractional_delay_interpolates_with_the_catmull_rom_kernel(time_ms):
    delay = time_ms * SR / 1000
    x = impulse(1000, 100)
    out = make(Delay, time_ms=time_ms, feedback=0.0, mix=1.0)(x, SR, block=512)
    expected = catmull_rom(np.arange(x.size) - 100 - delay)
    np.testing.assert_allclose(out[0], expected, atol=1e-6)
    slow = sine(200.0, 0.1)
    out = make(Delay, time_ms=time_ms, feedback=0.0, mix=1.0)(slow, SR, block=512)
    n = np.arange(int(delay) + 4, slow.size)
    np.testing.assert_allclose(out[1, n], np.sin(2 * np.pi * 200 * (n - delay) / SR), atol=2e-5)


def test_delay_repeats_decay_by_the_feedback_through_the_tone_filter():
    d, feedback, tone_hz = 480, 0.6, 2000.0
    x = impulse(8 * d, 0)
    out = make(Delay, time_ms=10.0, feedback=feedback, mix=1.0, tone_hz=tone_hz)(x, SR, block=300)[0].astype(np.float64)
    sums = [out[k * d - d // 2 : k * d + d // 2].sum() for k in range(1, 7)]
    np.testing.assert_allclose(np.array(sums[1:]) / sums[:-1], feedback, rtol=1e-4)
    a = 1 - np.exp(-2 * np.pi * tone_hz / SR)
    k = np.arange(d // 2)
    np.testing.assert_allclose(out[2 * d : 2 * d + d // 2], feedback * a * (1 - a) ** k, atol=1e-6)


def test_delay_ping_pong_alternates_channels():
    d, feedback = 480, 0.5
    x = impulse(7 * d, 0)
    out = make(Delay, time_ms=10.0, feedback=feedback, mix=1.0, ping_pong=1)(x, SR, block=256).astype(np.float64)
    for k in range(1, 7):
        window = slice(k * d - d // 2, k * d + d // 2)
        hit, quiet = (0, 1) if k % 2 else (1, 0)
        assert out[hit, window].sum() == pytest.approx(feedback ** (k - 1), rel=1e-4), k
        assert np.max(np.abs(out[quiet, window])) < 1e-9, k


def test_delay_and_chorus_at_mix_zero_are_exactly_dry():
    x = np.random.default_rng(4).uniform(-1, 1, (2, 20000)).astype(np.float32)
    for effect in (make(Delay, mix=0.0, feedback=0.9, time_ms=3.0, ping_pong=1), make(Chorus, mix=0.0, feedback=0.8)):
        np.testing.assert_array_equal(effect(x, SR, block=333), x)


# --- chorus ------------------------------------------------------------------------------


def test_chorus_with_no_depth_is_a_fixed_delay():
    x = impulse(2000, 50)
    out = make(Chorus, depth_ms=0.0, delay_ms=7.0, mix=1.0, feedback=0.0)(x, SR, block=256)
    np.testing.assert_array_equal(out, stereo(np.roll(x, 336)))


def instantaneous_delay_ms(out: np.ndarray, hz: float) -> np.ndarray:
    """Delay (ms) of `sin(2 pi hz (t - delay))`, per sample, from the phase of its analytic
    signal (negative frequencies zeroed), which is `2 pi hz (t - delay) - pi / 2`."""
    spectrum = np.fft.fft(out)
    spectrum[out.size // 2 + 1 :] = 0
    spectrum[1 : out.size // 2] *= 2
    t = np.arange(out.size) / SR
    phase = np.angle(np.fft.ifft(spectrum) * np.exp(-2j * np.pi * hz * t)) + np.pi / 2
    return np.mod(-phase / (2 * np.pi * hz), 1 / hz) * 1000


@pytest.mark.parametrize("rate_hz, spread_deg", [(0.5, 90.0), (2.0, 180.0)])
def test_chorus_delay_follows_the_lfo(rate_hz, spread_deg):
    base_ms, depth_ms, carrier_hz = 5.0, 6.0, 50.0
    x = sine(carrier_hz, 4 / rate_hz + 1.0)
    out = make(Chorus, rate_hz=rate_hz, depth_ms=depth_ms, delay_ms=base_ms, mix=1.0, feedback=0.0,
               spread_deg=spread_deg)(x, SR, block=512).astype(np.float64)
    n = np.arange(x.size)
    inner = slice(SR // 2, x.size - SR // 2)
    for channel, offset in ((0, 0.0), (1, spread_deg / 360)):
        lfo_ms = base_ms + depth_ms * (0.5 + 0.5 * np.sin(2 * np.pi * (rate_hz * n / SR + offset)))
        np.testing.assert_allclose(out[channel, SR // 10 :],
                                   np.sin(2 * np.pi * carrier_hz * (n / SR - lfo_ms / 1000))[SR // 10 :], atol=1e-5)
        measured = instantaneous_delay_ms(out[channel], carrier_hz)[inner]
        np.testing.assert_allclose(measured, lfo_ms[inner], atol=0.02)
        rising = np.flatnonzero(np.diff(np.sign(measured - base_ms - depth_ms / 2)) > 0)
        assert np.median(np.diff(rising)) / SR == pytest.approx(1 / rate_hz, rel=0.01)


# --- every effect ------------------------------------------------------------------------

SETTINGS = [
    (Compressor, {"threshold_db": -30.0, "ratio": 6.0, "knee_db": 6.0, "attack_ms": 3.0, "release_ms": 80.0, "makeup_db": 4.0, "mix": 0.8}),
    (Compressor, {"detector": 1, "attack_ms": 1.0}),
    (Limiter, {"ceiling_db": -3.0, "lookahead_ms": 2.0, "release_ms": 30.0}),
    (Delay, {"time_ms": 37.3, "feedback": 0.7, "mix": 0.5, "tone_hz": 3000.0, "ping_pong": 1}),
    (Delay, {"time_ms": 2.5, "feedback": 0.9, "mix": 0.7}),
    (Chorus, {"rate_hz": 3.0, "depth_ms": 8.0, "delay_ms": 2.0, "mix": 0.6, "feedback": 0.5, "spread_deg": 120.0}),
]


@pytest.mark.parametrize("kind, settings", SETTINGS)
def test_streaming_equals_whole_buffer_processing(kind, settings):
    rng = np.random.default_rng(len(settings))
    x = (rng.standard_normal((2, 3 * SR)) * np.repeat(rng.uniform(0.01, 3.0, (2, 30)), SR // 10, axis=1)).astype(np.float32)
    whole = stream(make(kind, **settings), x, lambda: x.shape[1], max_block=x.shape[1])
    streamed = stream(make(kind, **settings), x, random_blocks(rng))
    tiny = stream(make(kind, **settings), x[:, : SR // 4], random_blocks(rng, 1, 7))
    np.testing.assert_array_equal(streamed, whole)
    np.testing.assert_array_equal(tiny, whole[:, : SR // 4])


def sine_residual(y: np.ndarray, hz: float) -> np.ndarray:
    """`y[n+1] - 2 cos(w) y[n] + y[n-1]`: zero for any sine at `hz`, whatever its amplitude and
    phase (a second difference with the sine's own curvature taken out); a step of size s
    in `y` shows as about s."""
    return y[2:] - 2 * np.cos(2 * np.pi * hz / SR) * y[1:-1] + y[:-2]


CHANGES = [
    (Delay, {"time_ms": 200.0, "feedback": 0.5, "mix": 0.5}, {"time_ms": 230.0}),
    (Delay, {"time_ms": 200.0, "feedback": 0.5, "mix": 0.5}, {"time_ms": 120.0, "feedback": 0.9}),
    (Delay, {"time_ms": 200.0, "feedback": 0.5, "mix": 0.5}, {"ping_pong": 1, "tone_hz": 1000.0, "mix": 1.0}),
    (Chorus, {"delay_ms": 7.0, "depth_ms": 2.0, "mix": 0.5, "feedback": 0.3}, {"delay_ms": 15.0, "depth_ms": 6.0, "feedback": 0.7}),
    (Compressor, {"threshold_db": -20.0}, {"threshold_db": -50.0, "makeup_db": 12.0, "ratio": 20.0}),
    (Limiter, {"ceiling_db": 0.0}, {"ceiling_db": -18.0}),
]


@pytest.mark.parametrize("kind, before, after", CHANGES)
def test_parameter_changes_between_blocks_do_not_click(kind, before, after):
    hz, block = 440.0, 256
    x = sine(hz, 1.5, 0.5)
    x[:480] *= np.sin(np.linspace(0, np.pi / 2, 480)) ** 2
    x = stereo(x)
    change = 3 * SR // 4 // block * block
    out = stream(make(kind, **before), x, lambda: block, changes={change: after})[0].astype(np.float64)
    residual = np.abs(sine_residual(out, hz))
    steady = residual[change - SR // 4 : change - 2].max()
    moving = residual[change - 2 :].max()
    assert steady < 1e-4
    assert moving < 0.01, (steady, moving)
    spliced = out.copy()
    spliced[change:] = np.roll(out, 37)[change:]
    assert np.abs(sine_residual(spliced, hz))[change - 2 : change + 2].max() > 0.05


@pytest.mark.parametrize("kind, settings", SETTINGS)
def test_process_allocates_nothing(kind, settings):
    effect = make(kind, **settings)
    effect.prepare(SR, 512)
    bus = np.zeros((2, 1024), dtype=np.float32)[:, :512]
    silence = np.zeros(512, dtype=np.float32)
    none = np.zeros(0, dtype=np.int32)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 512)).astype(np.float32)
    tracemalloc.start()
    try:
        rounds = []
        for _ in range(3):
            for _ in range(300):
                bus[:] = noise
                effect.process(silence, bus, none)
            rounds.append(tracemalloc.get_traced_memory())
    finally:
        tracemalloc.stop()
    assert abs(rounds[2][0] - rounds[1][0]) < 512
    # One block of the bus is 4 KB: any per-block array would lift the peak past 1 KB.
    assert rounds[2][1] - rounds[2][0] < 1024


@pytest.mark.parametrize("kind, settings", SETTINGS)
def test_reset_clears_the_tail(kind, settings):
    effect = make(kind, **settings)
    x = np.random.default_rng(1).standard_normal((2, SR // 2)).astype(np.float32)
    first = stream(effect, x, lambda: 256, max_block=256)
    effect.reset()
    again = stream(effect, x, lambda: 256, max_block=256, prepare=False)
    np.testing.assert_array_equal(again, first)


def test_parameter_order_matches_the_kernels_indices():
    for kind, module, prefix in ((Compressor, dk, "COMPRESSOR_"), (Limiter, dk, "LIMITER_"), (Delay, dl, "ECHO_"),
                                 (Chorus, dl, "CHORUS_")):
        ids = [p.id for p in kind.parameters]
        for name in dir(module):
            if name.startswith(prefix) and isinstance(getattr(module, name), int):
                assert ids[getattr(module, name)] == name[len(prefix) :].lower(), (kind.name, name)
