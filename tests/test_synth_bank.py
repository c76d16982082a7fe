import numpy as np

from timbrel.engine.dsp import filtered_noise, harmonic_synth
from timbrel.engine.realtime.kernels.synth import SynthBank

SR, HOP, K, N = 48000, 160, 24, 65


def frames_for(rng, voices, frames):
    f0 = rng.uniform(60, 3000, (frames, voices)).astype(np.float32)
    amp = rng.uniform(0, 0.5, (frames, voices)).astype(np.float32)
    dist = rng.uniform(0, 1, (frames, voices, K)).astype(np.float32)
    mags = rng.uniform(0, 0.1, (frames, voices, N)).astype(np.float32)
    return f0, amp, dist, mags


def stream(bank, controls, total, rng, high=4096):
    """Blocks of random size, each cut so it crosses at most one hop boundary, as the engine does."""
    out = np.zeros(total)
    done = frame = 0
    while done < total:
        block = min(int(rng.integers(1, high + 1)), total - done)
        while block > 0:
            n = min(block, bank.remaining + HOP)
            crosses = n > bank.remaining
            bank.process(out[done : done + n], *(c[min(frame, len(c) - 1)] for c in controls))
            frame += crosses
            done += n
            block -= n
    return out


def expected_mix(controls, voices, frames, seed=0):
    f0, amp, dist, mags = (np.moveaxis(c, 0, 1).astype(np.float64) for c in controls)
    total = np.zeros(frames * HOP)
    for v in voices:
        total += harmonic_synth(f0[v], amp[v], dist[v], SR, HOP)
        total += filtered_noise(mags[: v + 1], SR, HOP, seed=seed)[v]
    return total


def test_fused_bank_equals_the_offline_processors_for_any_partition():
    rng = np.random.default_rng(0)
    voices, frames = 4, 150
    controls = frames_for(rng, voices, frames)
    bank = SynthBank(voices, K, N, SR, HOP, seed=0)
    for v in (0, 2, 3):
        bank.start_voice(v)
    out = stream(bank, controls, frames * HOP, rng)
    assert np.abs(out - expected_mix(controls, (0, 2, 3), frames)).max() < 1e-6


def test_tiny_blocks_and_blocks_longer_than_a_hop_agree():
    rng = np.random.default_rng(1)
    controls = frames_for(rng, 2, 60)
    results = []
    for high in (3, 2048):
        bank = SynthBank(2, K, N, SR, HOP, seed=0)
        bank.start_voice(0)
        bank.start_voice(1)
        results.append(stream(bank, controls, 60 * HOP, rng, high))
    assert np.abs(results[0] - results[1]).max() < 1e-9
    assert np.abs(results[0] - expected_mix(controls, (0, 1), 60)).max() < 1e-6


def test_a_voice_started_later_begins_at_the_next_frame_with_fresh_phase_and_noise():
    rng = np.random.default_rng(2)
    frames, later = 80, 30
    controls = frames_for(rng, 2, frames)
    bank = SynthBank(2, K, N, SR, HOP, seed=0)
    bank.start_voice(0)
    out = np.zeros(frames * HOP)
    for i in range(frames):
        if i == later:
            bank.start_voice(1)
        bank.process(out[i * HOP : (i + 1) * HOP], *(c[i] for c in controls))
    late = [c[later:] for c in controls]
    voice1 = expected_mix([np.stack([c[:, 1], c[:, 1]], 1) for c in late], (1,), frames - later)
    voice0 = expected_mix(controls, (0,), frames)
    assert np.abs(out - voice0 - np.concatenate([np.zeros(later * HOP), voice1])).max() < 1e-6
    bank.stop_voice(0)
    bank.stop_voice(1)
    silent = np.zeros(HOP)
    bank.process(silent, *(c[0] for c in controls))
    assert np.all(silent == 0)
