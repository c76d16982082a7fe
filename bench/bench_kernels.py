"""Synthesis kernels: real-time factor at 48 kHz, block 128, and a torch block-by-block baseline.

    python -m bench.bench_kernels [--seconds S]

Prints tables and writes bench/results/kernels.json. Every figure comes from one run, so
ratios compare like with like on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import math
import time

import numba
import numpy as np

from bench.report import report
from timbrel.engine.dsp import HarmonicOscillator, harmonic_synth
from timbrel.engine.realtime.kernels.fastmath import FASTMATH
from timbrel.engine.realtime.kernels.synth import SynthBank

SR, BLOCK, HOP, HARMONICS, BANDS = 48000, 128, 160, 64, 65
BLOCK_SECONDS = BLOCK / SR


def make_controls(voices: int, frames: int, seed: int = 0):
    """Random but musical controls, `[frames, voices, ...]` float32 as a model would emit."""
    rng = np.random.default_rng(seed)
    f0 = rng.uniform(80, 1000, voices)[None] * 2 ** (0.02 * np.sin(np.arange(frames) / 20))[:, None]
    amp = rng.uniform(0.05, 0.2, (frames, voices))
    dist = rng.uniform(0, 1, (frames, voices, HARMONICS)) / np.arange(1, HARMONICS + 1)
    mags = rng.uniform(0, 0.01, (frames, voices, BANDS))
    return [np.ascontiguousarray(a, dtype=np.float32) for a in (f0, amp, dist, mags)]


def time_bank(voices: int, seconds: float) -> np.ndarray:
    """Per-block wall time (ns) of the engine's fused call: oscillators plus noise, `voices` voices."""
    blocks = int(seconds * SR / BLOCK)
    f0, amp, dist, mags = make_controls(voices, blocks * BLOCK // HOP + 2)
    bank = SynthBank(voices, HARMONICS, BANDS, SR, HOP)
    for v in range(voices):
        bank.start_voice(v)
    out = np.zeros(BLOCK)
    times = np.empty(blocks, dtype=np.int64)
    frame = 0
    for b in range(blocks):
        t0 = time.perf_counter_ns()
        out[:] = 0.0
        crosses = BLOCK > bank.remaining
        bank.process(out, f0[frame], amp[frame], dist[frame], mags[frame])
        frame += crosses
        times[b] = time.perf_counter_ns() - t0
    return times


def time_oscillator(seconds: float, render=None) -> np.ndarray:
    """Per-block wall time (ns) of one voice of `HarmonicOscillator` alone, with a chosen render strategy."""
    blocks = int(seconds * SR / BLOCK)
    f0, amp, dist, _ = make_controls(1, blocks * BLOCK // HOP + 2)
    osc = HarmonicOscillator(1, HARMONICS, SR, HOP)
    if render is not None:
        osc.render = render.__get__(osc)
    out = np.zeros((1, BLOCK))
    views = {n: out[:, :n] for n in range(1, BLOCK + 1)}
    tails = {n: out[:, BLOCK - n :] for n in range(1, BLOCK + 1)}
    times = np.empty(blocks, dtype=np.int64)
    frame = 0
    for b in range(blocks):
        t0 = time.perf_counter_ns()
        done = 0
        while done < BLOCK:
            if osc.remaining == 0:
                osc.push(f0[frame], amp[frame], dist[frame])
                frame += 1
            n = min(BLOCK - done, osc.remaining)
            osc.render(views[n] if done == 0 else tails[n])
            done += n
        times[b] = time.perf_counter_ns() - t0
    return times


@numba.njit(nogil=True, cache=True, fastmath=FASTMATH)
def _render_sin_per_harmonic(out, pos, hop, active, primed, phase, f0_prev, f0_cur, a_prev, a_cur, kmax, rad_per_hz, phi, acc):
    """The obvious alternative: one `sin` per harmonic per sample."""
    voices, n = out.shape
    inv_hop = 1.0 / hop
    for v in range(voices):
        if not (active[v] and primed[v]):
            continue
        w_prev = f0_prev[v] * rad_per_hz
        dw = (f0_cur[v] * rad_per_hz - w_prev) * inv_hop
        w0 = w_prev + dw * (pos + 1)
        ph = phase[v]
        for j in range(n):
            phi[j] = ph + j * w0 + dw * (j * (j - 1) * 0.5)
            acc[j] = 0.0
        phase[v] = (ph + n * w0 + dw * (n * (n - 1) * 0.5)) % (2 * math.pi)
        for k in range(kmax[v]):
            a0 = a_prev[v, k]
            step = (a_cur[v, k] - a0) * inv_hop
            base = a0 + step * (pos + 1)
            for j in range(n):
                acc[j] += (base + step * j) * math.sin((k + 1) * phi[j])
        for j in range(n):
            out[v, j] += acc[j]


def _sin_render(self, out):
    _render_sin_per_harmonic(out, self._pos, self.hop, self.active, self._primed, self._phase, self._f0_prev,
                             self._f0_cur, self._a_prev, self._a_cur, self._kmax, self._rad_per_hz, self._sin_a, self._acc)
    self._pos += out.shape[1]


def strategy_error(render=None) -> float:
    """Largest deviation (full scale 1) from the float64 reference over 2 s of random controls."""
    f0, amp, dist, _ = make_controls(1, 600, seed=3)
    osc = HarmonicOscillator(1, HARMONICS, SR, HOP)
    if render is not None:
        osc.render = render.__get__(osc)
    out = np.zeros((1, 600 * HOP))
    for i in range(600):
        osc.push(f0[i], amp[i], dist[i])
        osc.render(out[:, i * HOP : (i + 1) * HOP])
    reference = harmonic_synth(f0.T.astype(np.float64), amp.T.astype(np.float64), dist.transpose(1, 0, 2).astype(np.float64), SR, HOP)
    return float(np.abs(out - reference).max())


def time_torch(voices: int, seconds: float) -> np.ndarray:
    """Per-block time (ns) of the torch twin's math driven block by block, as a PyTorch DDSP port runs it."""
    import torch

    from timbrel.export.synth import harmonic_amplitudes, noise_filter_matrix

    torch.set_num_threads(1)
    blocks = int(seconds * SR / BLOCK)
    f0, amp, dist, mags = (torch.from_numpy(a.astype(np.float64)) for a in make_controls(voices, blocks * BLOCK // HOP + 2))
    matrix = noise_filter_matrix(BANDS, SR).to(torch.float64)
    taps_n = matrix.shape[0]
    k = torch.arange(1, HARMONICS + 1, dtype=torch.float64)
    phase = torch.zeros(voices, dtype=torch.float64)
    tail = torch.zeros(voices, taps_n - 1, dtype=torch.float64)
    prev = cur = None
    gen = torch.Generator().manual_seed(0)
    times = np.empty(blocks, dtype=np.int64)
    frame, pos = 0, HOP
    with torch.no_grad():
        for b in range(blocks):
            t0 = time.perf_counter_ns()
            pieces, done = [], 0
            while done < BLOCK:
                if pos == HOP:
                    a = harmonic_amplitudes(f0[frame], amp[frame], dist[frame], SR)
                    taps = mags[frame] @ matrix.T
                    prev, cur = (cur if cur is not None else (f0[frame], a)), (f0[frame], a)
                    frame, pos = frame + 1, 0
                n = min(BLOCK - done, HOP - pos)
                t = torch.arange(pos + 1, pos + n + 1, dtype=torch.float64) / HOP
                f = prev[0][:, None] + (cur[0] - prev[0])[:, None] * t
                w = 2 * math.pi * f / SR
                phi = phase[:, None] + torch.cumsum(w, 1) - w
                phase = (phi[:, -1] + w[:, -1]) % (2 * math.pi)
                amps = prev[1][:, None, :] + (cur[1] - prev[1])[:, None, :] * t[None, :, None]
                y = (amps * torch.sin(phi[:, :, None] * k)).sum(-1)
                x = torch.rand(voices, n, generator=gen, dtype=torch.float64) * 2 - 1
                full = torch.nn.functional.conv1d(
                    torch.nn.functional.pad(x, (taps_n - 1, taps_n - 1))[None], taps.flip(-1)[:, None, :], groups=voices
                )[0]
                full[:, : taps_n - 1] += tail
                y = y + full[:, :n]
                tail = full[:, n:]
                pieces.append(y)
                done += n
                pos += n
            torch.cat(pieces, 1).sum(0)
            times[b] = time.perf_counter_ns() - t0
    return times


def summarise(label: str, voices: int, times: np.ndarray) -> dict:
    med = float(np.median(times)) * 1e-9
    return {
        "path": label,
        "voices": voices,
        "median_us": med * 1e6,
        "p99_us": float(np.percentile(times, 99)) * 1e-3,
        "max_us": float(times.max()) * 1e-3,
        "rtf_median": med / BLOCK_SECONDS,
        "rtf_mean": float(times.mean()) * 1e-9 / BLOCK_SECONDS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per kernel measurement")
    parser.add_argument("--torch-seconds", type=float, default=1.0, help="audio per torch measurement")
    args = parser.parse_args()

    time_oscillator(0.1)
    time_oscillator(0.1, _sin_render)
    time_bank(2, 0.1)
    strategies = []
    for name, render in (("chebyshev recurrence (kept)", None), ("sin per harmonic", _sin_render)):
        times = time_oscillator(args.seconds, render)
        strategies.append({**summarise(name, 1, times), "max_error": strategy_error(render)})
    report("kernel-strategies", strategies, sample_rate=SR, block=BLOCK, hop=HOP, harmonics=HARMONICS,
           note="harmonic oscillators only, one voice")

    rows = [summarise("numba SynthBank (oscillators + noise)", v, time_bank(v, args.seconds)) for v in (1, 16, 64)]
    time_torch(1, 0.05)
    torch_rows = [summarise("torch twin, block by block", v, time_torch(v, args.torch_seconds)) for v in (1, 16, 64)]
    for row, base in zip(rows, torch_rows):
        row["speedup_vs_torch"] = base["median_us"] / row["median_us"]
    report("kernels", rows + torch_rows, sample_rate=SR, block=BLOCK, hop=HOP, harmonics=HARMONICS, bands=BANDS,
           targets={"rtf_1_voice": 0.002, "rtf_16_voices": 0.03, "speedup_vs_torch": 20})


if __name__ == "__main__":
    main()
