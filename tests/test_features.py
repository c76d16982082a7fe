"""Feature extractors: pitch accuracy and voicing, loudness calibration, streaming == offline."""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from timbrel.engine.realtime.features import LoudnessMeter, PitchTracker, a_weighting_sos, estimate_pitch, loudness_db
from timbrel.engine.realtime.features.loudness import sos_response
from timbrel.engine.realtime.features.pitch import _smooth

SR = 48000
HOP = 160
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def tone(f0_hz, seconds: float, sample_rate: int = SR, harmonics: int = 1, first: int = 1,
         amplitude: float = 0.5, seed: int = 0) -> np.ndarray:
    """Harmonic tone `[samples]` (float32), partials `first … harmonics` at 1/k, random phases.

    `f0_hz` is a number or a function of time (s) giving Hz; partials above Nyquist are muted.
    """
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f = f0_hz(t) if callable(f0_hz) else np.full_like(t, f0_hz)
    phase = 2 * np.pi * np.cumsum(f) / sample_rate
    rng = np.random.default_rng(seed)
    y = np.zeros_like(t)
    for k in range(first, harmonics + 1):
        y += (k * f < sample_rate / 2) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k
    return (amplitude * y / np.abs(y).max()).astype(np.float32)


def raw_pitch_accuracy(f0_hz, confidence, reference_hz) -> float:
    """Share of frames with a reference (> 0) that are voiced and within 50 cents of it."""
    voiced_ref = reference_hz > 0
    cents = 1200 * np.abs(np.log2(np.maximum(f0_hz[voiced_ref], 1e-9) / reference_hz[voiced_ref]))
    return float(np.mean((confidence[voiced_ref] > 0) & (cents < 50)))


def centre_times(frames: int, latency_samples: int, sample_rate: int = SR, hop: int = HOP):
    """Time (s) each frame's window describes: its centre, `latency / 2` before the frame end."""
    return ((np.arange(frames) + 1) * hop - latency_samples / 2) / sample_rate


def settled(frames: int, latency_samples: int, hop: int = HOP) -> np.ndarray:
    """Frames whose whole window lies inside the signal."""
    return (np.arange(frames) + 1) * hop >= latency_samples


def random_blocks(audio: np.ndarray, rng: np.random.Generator, largest: int = 4096):
    """Split `audio` into consecutive blocks of random sizes in `1 … largest`."""
    start = 0
    while start < len(audio):
        size = int(rng.integers(1, largest + 1))
        yield audio[start:start + size]
        start += size


def stream(meter, outputs: tuple[str, ...], audio: np.ndarray, rng: np.random.Generator,
           largest: int = 4096) -> list[np.ndarray]:
    """Feed `audio` to `meter` in random blocks; return its `outputs` arrays' frames, joined."""
    frames = {name: [] for name in outputs}
    for block in random_blocks(audio, rng, largest):
        n = meter.process(block)
        for name in outputs:
            frames[name].append(getattr(meter, name)[:n].copy())
    return [np.concatenate(frames[name]) for name in outputs]


def mixed_signal(sample_rate: int) -> np.ndarray:
    """Glides, a jump, noise, silence and a quiet tail: every code path of both features."""
    rng = np.random.default_rng(7)
    parts = [
        tone(lambda t: 80 * 2 ** (t * 2), 0.6, sample_rate, harmonics=20),
        np.zeros(sample_rate // 10, np.float32),
        tone(lambda t: 1500 * 2 ** (-t), 0.4, sample_rate, harmonics=3),
        (0.2 * rng.standard_normal(sample_rate // 5)).astype(np.float32),
        tone(330.0, 0.2, sample_rate, harmonics=8, amplitude=1e-4),
    ]
    return np.concatenate(parts)


# ----------------------------------------------------------------------------- pitch


@pytest.mark.parametrize("sample_rate, hop", [(48000, 160), (44100, 147), (96000, 320)])
def test_pitch_streaming_equals_offline_for_random_partitions(sample_rate, hop):
    audio = mixed_signal(sample_rate)
    f0_offline, conf_offline = estimate_pitch(audio, sample_rate, hop)
    assert len(f0_offline) == len(audio) // hop
    for seed, largest in [(0, 4096), (1, 4096), (2, 37)]:
        tracker = PitchTracker(sample_rate, hop)
        f0, conf = stream(tracker, ("f0_hz", "confidence"), audio, np.random.default_rng(seed),
                          largest)
        np.testing.assert_array_equal(f0, f0_offline)
        np.testing.assert_array_equal(conf, conf_offline)
    assert (conf_offline > 0).mean() > 0.4


@pytest.mark.parametrize("sample_rate, hop, latency",
                         [(48000, 160, 1200), (44100, 147, 1103), (96000, 320, 2400)])
def test_pitch_latency_is_at_most_25_ms(sample_rate, hop, latency):
    assert PitchTracker(sample_rate, hop).latency_samples == latency
    assert latency <= 0.025 * sample_rate + 1


def test_pitch_is_causal_and_settles_within_its_latency():
    tracker = PitchTracker(SR, HOP)
    change = SR // 2 + 37
    audio = np.concatenate([tone(220.0, 0.6, harmonics=10)[:change],
                            tone(330.0, 0.5, harmonics=10)])
    f0, conf = estimate_pitch(audio, SR, HOP)
    ends = (np.arange(len(f0)) + 1) * HOP

    perturbed = audio.copy()
    perturbed[change:] = 0.3 * np.random.default_rng(0).standard_normal(len(audio) - change)
    f0_p, conf_p = estimate_pitch(perturbed, SR, HOP)
    before = ends <= change
    np.testing.assert_array_equal(f0_p[before], f0[before])
    np.testing.assert_array_equal(conf_p[before], conf[before])

    after = ends >= change + tracker.latency_samples
    reference = np.where(after, 330.0, np.where(before & (ends >= tracker.latency_samples),
                                                220.0, 0.0))
    assert raw_pitch_accuracy(f0, conf, reference) == 1.0


def test_pitch_onset_is_voiced_within_latency():
    tracker = PitchTracker(SR, HOP)
    onset = 4801
    audio = np.concatenate([np.zeros(onset, np.float32), tone(440.0, 0.2, harmonics=5)])
    f0, conf = estimate_pitch(audio, SR, HOP)
    ends = (np.arange(len(f0)) + 1) * HOP
    assert np.all(conf[ends <= onset] == 0)
    assert np.all(f0[ends <= onset] == 0)
    first_full = np.flatnonzero(ends >= onset + tracker.latency_samples)[0]
    assert np.all(conf[first_full:] > 0)


@pytest.mark.parametrize("sample_rate, hop", [(48000, 160), (44100, 147), (96000, 320)])
def test_pitch_accuracy_sines_50_hz_to_2_khz(sample_rate, hop):
    latency = PitchTracker(sample_rate, hop).latency_samples
    for f in np.geomspace(50, 2000, 17):
        f0, conf = estimate_pitch(tone(f, 0.25, sample_rate, seed=int(f)), sample_rate, hop)
        reference = np.where(settled(len(f0), latency, hop), f, 0.0)
        assert raw_pitch_accuracy(f0, conf, reference) >= 0.97, f


@pytest.mark.parametrize("first", [1, 2], ids=["full", "missing-fundamental"])
def test_pitch_accuracy_harmonic_tones_55_hz_to_2_khz(first):
    """Sawtooth-like tones (30 partials at 1/k), with and without the fundamental.

    Missing-fundamental tones are tested to 1 kHz: above it the partials left under the
    3 kHz search band are too few to fix the period.
    """
    top = 2000 if first == 1 else 1000
    latency = PitchTracker(SR, HOP).latency_samples
    for f in np.geomspace(55, top, 17):
        for seed in range(3):
            audio = tone(f, 0.25, harmonics=30, first=first, seed=seed)
            f0, conf = estimate_pitch(audio, SR, HOP)
            reference = np.where(settled(len(f0), latency), f, 0.0)
            assert raw_pitch_accuracy(f0, conf, reference) >= 0.97, (f, seed)


def test_pitch_precision_on_steady_tones_is_a_few_cents():
    """The full-rate refinement: the decimated search alone is off by up to ~20 cents."""
    latency = PitchTracker(SR, HOP).latency_samples
    for harmonics in (1, 30):
        for f in np.geomspace(55, 2000, 13):
            f0, conf = estimate_pitch(tone(f, 0.2, harmonics=harmonics), SR, HOP)
            frames = settled(len(f0), latency)
            assert np.all(conf[frames] > 0)
            assert np.max(np.abs(1200 * np.log2(f0[frames] / f))) < 5, (f, harmonics)


def test_pitch_edge_of_range_50_hz_harmonic_tones():
    """The documented trade-off of a 25 ms window: at fmin, rich tones miss some frames."""
    latency = PitchTracker(SR, HOP).latency_samples
    scores = []
    for seed in range(6):
        f0, conf = estimate_pitch(tone(50.0, 0.3, harmonics=30, seed=seed), SR, HOP)
        scores.append(raw_pitch_accuracy(f0, conf, np.where(settled(len(f0), latency), 50.0, 0)))
    assert np.mean(scores) >= 0.85


@pytest.mark.parametrize("harmonics", [1, 20])
@pytest.mark.parametrize("direction", [1, -1], ids=["up", "down"])
def test_pitch_accuracy_glide_600_cents_per_second(harmonics, direction):
    """A glide across the whole range, 50 Hz to 2 kHz, at 6 semitones per second."""
    seconds = np.log2(2000 / 50) * 2

    def f0_of(t):
        return 50 * 2 ** (t / 2) if direction == 1 else 2000 * 2 ** (-t / 2)

    tracker = PitchTracker(SR, HOP)
    f0, conf = estimate_pitch(tone(f0_of, seconds, harmonics=harmonics), SR, HOP)
    reference = np.where(settled(len(f0), tracker.latency_samples),
                         f0_of(centre_times(len(f0), tracker.latency_samples)), 0.0)
    assert raw_pitch_accuracy(f0, conf, reference) >= 0.97


@pytest.mark.parametrize("centre_hz", [62.0, 110.0, 220.0, 440.0, 880.0, 1760.0])
def test_pitch_accuracy_vibrato_6_hz_one_semitone(centre_hz):
    """The reference is read at the window centre, the instant the estimate describes."""

    def f0_of(t):
        return centre_hz * 2 ** (np.sin(2 * np.pi * 6 * t) / 12)

    tracker = PitchTracker(SR, HOP)
    f0, conf = estimate_pitch(tone(f0_of, 1.5, harmonics=20), SR, HOP)
    reference = np.where(settled(len(f0), tracker.latency_samples),
                         f0_of(centre_times(len(f0), tracker.latency_samples)), 0.0)
    assert raw_pitch_accuracy(f0, conf, reference) >= 0.97


def test_pitch_accuracy_in_white_noise_at_10_db_snr():
    rng = np.random.default_rng(3)
    latency = PitchTracker(SR, HOP).latency_samples
    for f in [60.0, 150.0, 440.0, 1200.0]:
        audio = tone(f, 0.5, harmonics=10)
        noise = rng.standard_normal(len(audio)) * np.sqrt(np.mean(audio ** 2) / 10)
        f0, conf = estimate_pitch((audio + noise).astype(np.float32), SR, HOP)
        reference = np.where(settled(len(f0), latency), f, 0.0)
        assert raw_pitch_accuracy(f0, conf, reference) >= 0.97, f


@pytest.mark.parametrize("rms_db", [-3.0, -20.0, -40.0, -55.0])
def test_pitch_voicing_false_alarm_on_white_noise(rms_db):
    noise = np.random.default_rng(int(-rms_db)).standard_normal(2 * SR) * 10 ** (rms_db / 20)
    _, conf = estimate_pitch(noise.astype(np.float32), SR, HOP)
    assert np.mean(conf > 0) <= 0.05


def test_pitch_silence_and_signals_under_the_gate_are_unvoiced():
    _, conf = estimate_pitch(np.zeros(SR, np.float32), SR, HOP)
    assert np.all(conf == 0)
    _, conf = estimate_pitch(tone(440.0, 1.0, amplitude=10 ** (-65 / 20)), SR, HOP)
    assert np.all(conf == 0)
    _, conf = estimate_pitch(tone(440.0, 1.0, amplitude=10 ** (-50 / 20)), SR, HOP)
    assert np.mean(conf > 0) > 0.9


def test_pitch_unvoiced_frames_hold_the_last_f0_with_zero_confidence():
    audio = np.concatenate([np.zeros(SR // 10, np.float32), tone(300.0, 0.3, harmonics=5),
                            np.zeros(SR // 5, np.float32)])
    f0, conf = estimate_pitch(audio, SR, HOP)
    voiced = np.flatnonzero(conf > 0)
    assert np.all(f0[:voiced[0]] == 0)
    assert np.all(conf[voiced[-1] + 1:] == 0)
    assert np.all(f0[voiced[-1] + 1:] == f0[voiced[-1]])
    assert abs(f0[voiced[-1]] - 300) < 3
    assert np.all(conf[voiced] > 1 - PitchTracker(SR, HOP).threshold)


def test_pitch_smoothing_repairs_isolated_jumps_and_short_runs():
    f0 = np.full(20, 200.0)
    conf = np.full(20, 0.95)
    f0[5] = 400.0
    conf[12:14] = 0.0
    conf[15] = 0.0
    f0[14] = 800.0
    smoothed, smoothed_conf = _smooth(f0, conf)
    assert smoothed[5] == 200.0
    assert smoothed_conf[14] == 0.0 and smoothed[14] == 200.0
    np.testing.assert_array_equal(smoothed_conf[conf > 0][:10], conf[conf > 0][:10])

    latency = PitchTracker(SR, HOP).latency_samples
    f0_raw, conf_raw = estimate_pitch(tone(lambda t: 100 * 2 ** (t / 2), 2.0, harmonics=10),
                                      SR, HOP)
    f0_s, conf_s = estimate_pitch(tone(lambda t: 100 * 2 ** (t / 2), 2.0, harmonics=10),
                                  SR, HOP, smooth=True)
    assert len(f0_s) == len(f0_raw)
    reference = np.where(settled(len(f0_s), latency),
                         100 * 2 ** (centre_times(len(f0_s), latency) / 2), 0.0)
    assert raw_pitch_accuracy(f0_s, conf_s, reference) >= 0.97


def render_fluidsynth(tmp_path: Path, parts, note_s=0.5, gap_s=0.1):
    """Render `parts = [(program, [midi notes])]` one after another; return audio and spans."""
    mido = pytest.importorskip("mido")
    import soundfile

    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        pytest.skip("fluidsynth or FluidR3_GM.sf2 is not installed")
    ticks_per_s = 960  # 480 ticks per beat at 120 bpm
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    spans, t = [], 0.0
    for program, notes in parts:
        track.append(mido.Message("program_change", program=program, time=0))
        for note in notes:
            track.append(mido.Message("note_on", note=note, velocity=100,
                                      time=round(gap_s * ticks_per_s)))
            track.append(mido.Message("note_off", note=note, velocity=0,
                                      time=round(note_s * ticks_per_s)))
            t += gap_s
            spans.append((t, t + note_s, note))
            t += note_s
    midi.save(tmp_path / "melody.mid")
    subprocess.run(["fluidsynth", "-ni", "-g", "1", "-R", "0", "-C", "0", "-r", str(SR), "-F",
                    str(tmp_path / "melody.wav"), str(SOUNDFONT), str(tmp_path / "melody.mid")],
                   check=True, capture_output=True)
    audio, sample_rate = soundfile.read(tmp_path / "melody.wav", dtype="float32")
    assert sample_rate == SR
    return (audio.mean(axis=1) if audio.ndim == 2 else audio), spans


def test_pitch_accuracy_on_fluidsynth_instruments(tmp_path):
    """Monophonic GM melodies; the reference is each MIDI note, 50 ms clear of its edges."""
    parts = [(73, range(60, 96, 3)), (71, range(50, 92, 3)), (56, range(55, 85, 3)),
             (65, range(49, 82, 3)), (68, range(58, 92, 3)), (57, range(40, 73, 3)),
             (40, range(55, 89, 3))]
    audio, spans = render_fluidsynth(tmp_path, parts)
    f0, conf = estimate_pitch(audio, SR, HOP)
    ends = (np.arange(len(f0)) + 1) * HOP / SR
    reference = np.zeros(len(f0))
    for start, stop, note in spans:
        reference[(ends >= start + 0.05) & (ends <= stop - 0.05)] = 440 * 2 ** ((note - 69) / 12)
    assert raw_pitch_accuracy(f0, conf, reference) >= 0.97


def test_pitch_process_allocates_nothing():
    tracker = PitchTracker(SR, HOP)
    blocks = [tone(220.0, 4096 / SR, seed=i) for i in range(20)]
    tracker.process(blocks[0])
    tracemalloc.start()
    for block in blocks:
        tracker.process(block)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4096


def test_pitch_rejects_bad_arguments_in_one_line():
    with pytest.raises(ValueError, match="pitch range"):
        PitchTracker(SR, HOP, fmin=500, fmax=100)
    with pytest.raises(ValueError, match="fmax <= 2400 Hz"):
        PitchTracker(SR, HOP, fmax=4000)
    tracker = PitchTracker(SR, HOP, max_block=256)
    with pytest.raises(ValueError, match="raise max_block"):
        tracker.process(np.zeros(257, np.float32))
    assert estimate_pitch(np.zeros(HOP - 1, np.float32), SR, HOP)[0].shape == (0,)


# -------------------------------------------------------------------------- loudness


def _settled_loudness(audio, sample_rate=SR, hop=HOP):
    """Frames after the window and the A-weighting filter's 20 Hz poles have settled."""
    values = loudness_db(audio, sample_rate, hop)
    warm_up = LoudnessMeter(sample_rate, hop).latency_samples + sample_rate // 20
    return values[settled(len(values), warm_up, hop)]


@pytest.mark.parametrize("sample_rate, hop", [(48000, 160), (44100, 147), (96000, 320)])
def test_loudness_of_full_scale_1_khz_sine_is_minus_3_db(sample_rate, hop):
    t = np.arange(sample_rate // 2) / sample_rate
    values = _settled_loudness(np.sin(2 * np.pi * 1000 * t).astype(np.float32),
                               sample_rate, hop)
    np.testing.assert_allclose(values, 10 * np.log10(0.5), atol=0.01)


def test_loudness_follows_level_in_db_and_is_monotone():
    t = np.arange(SR // 4) / SR
    sine = np.sin(2 * np.pi * 1000 * t)
    means = [_settled_loudness((sine * 10 ** (g / 20)).astype(np.float32)).mean()
             for g in range(0, -71, -10)]
    np.testing.assert_allclose(np.diff(means), -10.0, atol=0.02)

    t = np.arange(2 * SR) / SR
    fade = (np.sin(2 * np.pi * 440 * t) * 10 ** (-35 * t / 20)).astype(np.float32)
    values = _settled_loudness(fade)
    assert np.all(np.diff(values) < 0)


def test_loudness_of_silence_is_the_floor():
    np.testing.assert_array_equal(loudness_db(np.zeros(SR // 10, np.float32), SR, HOP), -80.0)
    quiet = (1e-6 * np.random.default_rng(0).standard_normal(SR // 10)).astype(np.float32)
    np.testing.assert_array_equal(loudness_db(quiet, SR, HOP), -80.0)


@pytest.mark.parametrize("sample_rate", [44100, 48000, 96000])
def test_loudness_a_weighting_follows_the_analog_curve(sample_rate):
    f = np.array([20, 31.5, 63, 125, 250, 500, 1000, 2000, 4000])
    f2 = f ** 2
    analog = 20 * np.log10(12194.217 ** 2 * f2 ** 2 / (
        (f2 + 20.598997 ** 2) * np.sqrt((f2 + 107.65265 ** 2) * (f2 + 737.86223 ** 2))
        * (f2 + 12194.217 ** 2))) + 2.0
    digital = 20 * np.log10(np.abs(sos_response(a_weighting_sos(sample_rate), sample_rate, f)))
    np.testing.assert_allclose(digital, analog, atol=0.06)

    t = np.arange(SR // 2) / SR
    low = _settled_loudness(np.sin(2 * np.pi * 100 * t).astype(np.float32)).mean()
    mid = _settled_loudness(np.sin(2 * np.pi * 1000 * t).astype(np.float32)).mean()
    assert low - mid == pytest.approx(-19.15, abs=0.1)


@pytest.mark.parametrize("sample_rate, hop", [(48000, 160), (44100, 147)])
def test_loudness_streaming_equals_offline_for_random_partitions(sample_rate, hop):
    audio = mixed_signal(sample_rate)
    offline = loudness_db(audio, sample_rate, hop)
    assert len(offline) == len(audio) // hop
    for seed, largest in [(0, 4096), (1, 4096), (2, 37)]:
        (streamed,) = stream(LoudnessMeter(sample_rate, hop), ("loudness_db",), audio,
                             np.random.default_rng(seed), largest)
        np.testing.assert_array_equal(streamed, offline)


def test_reset_starts_a_fresh_stream():
    audio = mixed_signal(SR)[:4096]
    tracker, meter = PitchTracker(SR, HOP), LoudnessMeter(SR, HOP)
    tracker.process(tone(440.0, 0.08))
    meter.process(tone(440.0, 0.08))
    tracker.reset()
    meter.reset()
    n = tracker.process(audio)
    f0, conf = estimate_pitch(audio, SR, HOP)
    np.testing.assert_array_equal(tracker.f0_hz[:n], f0)
    np.testing.assert_array_equal(tracker.confidence[:n], conf)
    n = meter.process(audio)
    np.testing.assert_array_equal(meter.loudness_db[:n], loudness_db(audio, SR, HOP))


def test_loudness_process_allocates_nothing():
    meter = LoudnessMeter(SR, HOP)
    blocks = [tone(220.0, 4096 / SR, seed=i) for i in range(20)]
    meter.process(blocks[0])
    tracemalloc.start()
    for block in blocks:
        meter.process(block)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4096
