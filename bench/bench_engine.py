"""Engine block time: MIDI voices and live transfer at 48 kHz, block 128, against torch.

    python -m bench.bench_engine [--seconds S] [--model PATH]

Drives `Engine.process` exactly as the audio callback does, with the shipped model, and
reports per-block time (median, p99, max) as a share of the block's duration. Then finds
how many voices fit within 70 % of the budget, and times the same model and synth in
torch, block by block, for a one-run ratio. Writes bench/results/engine.json.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import report
from timbrel.engine.realtime.events import NOTE_ON
from timbrel.engine.realtime.host import Engine
from timbrel.engine.render import render_audio, render_midi
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import load_model
from timbrel.plugin.transfer import TimbreTransfer
from timbrel.presets import default_model

SR, BLOCK = 48000, 128
BUDGET_S = BLOCK / SR


def chord(voices: int) -> list[int]:
    """`voices` distinct notes spread over the keyboard."""
    return [36 + (i * 7) % 64 for i in range(voices)]


def time_midi(model, voices: int, seconds: float) -> np.ndarray:
    """Per-block time (s) of `voices` held notes through the live path."""
    engine = Engine(SR, BLOCK)
    engine.load(MidiInstrument(model, voices=max(voices, 1)))
    for note in chord(voices):
        engine.events.push(NOTE_ON | note << 8 | 100 << 16)
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    for _ in range(200):
        engine.process(None, out)
    assert engine.plugin.active_voices == voices, "not every voice sounded"
    times = np.empty(int(seconds / BUDGET_S))
    for i in range(times.size):
        t0 = time.perf_counter_ns()
        engine.process(None, out)
        times[i] = (time.perf_counter_ns() - t0) * 1e-9
    return times


def time_transfer(model, seconds: float) -> np.ndarray:
    """Per-block time (s) of the transfer path fed a gliding sung-like tone."""
    engine = Engine(SR, BLOCK)
    engine.load(TimbreTransfer(model))
    n = int(seconds * SR) + 200 * BLOCK
    f0 = np.geomspace(150, 600, n)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = (0.2 * sum(np.sin(k * phase) / k for k in range(1, 8))).astype(np.float32)
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    times = np.empty(int(seconds / BUDGET_S))
    for b in range(200 + times.size):
        block = voice[b * BLOCK : (b + 1) * BLOCK]
        t0 = time.perf_counter_ns()
        engine.process(block, out)
        if b >= 200:
            times[b - 200] = (time.perf_counter_ns() - t0) * 1e-9
    return times


def time_torch(model_path, voices: int, seconds: float) -> np.ndarray:
    """The same model and synth in torch, block by block, as a PyTorch DDSP port would run them.

    A freshly initialised torch decoder of the model's size stands in for the trained one
    (the cost does not depend on the weights). Per hop one batched GRU step; per block harmonic plus noise synthesis and an
    FFT convolution of the block with the reverb IR (overlap-add).
    """
    import torch

    from timbrel.export.model import Decoder, ModelConfig
    from timbrel.export.synth import harmonic_amplitudes, noise_filter_matrix

    torch.set_num_threads(1)
    info = load_model(model_path).info
    config = ModelConfig(sample_rate=info.sample_rate, frame_rate=info.frame_rate, harmonics=info.harmonics,
                         noise_bands=info.noise_bands, hidden=info.hidden)
    decoder = Decoder(config).eval()
    hop = info.model_hop_samples
    matrix = noise_filter_matrix(info.noise_bands, SR).to(torch.float64)
    taps = matrix.shape[0]
    ir = torch.from_numpy(load_model(model_path).reverb_ir.astype(np.float64))
    nfft = 1 << (BLOCK + ir.numel() - 1).bit_length()
    ir_spectrum = torch.fft.rfft(ir, nfft)
    reverb_tail = torch.zeros(nfft - BLOCK, dtype=torch.float64)
    k = torch.arange(1, info.harmonics + 1, dtype=torch.float64)
    f0 = torch.tensor([440 * 2 ** ((n - 69) / 12) for n in chord(voices)], dtype=torch.float32)
    ld = torch.full((voices,), -30.0)
    state = torch.zeros(voices, info.hidden)
    phase = torch.zeros(voices, dtype=torch.float64)
    noise_tail = torch.zeros(voices, taps - 1, dtype=torch.float64)
    amps = prev = None
    pos = hop
    blocks = int(seconds / BUDGET_S)
    times = np.empty(blocks)
    with torch.no_grad():
        for b in range(blocks):
            t0 = time.perf_counter_ns()
            pieces, done = [], 0
            while done < BLOCK:
                if pos == hop:
                    amp, dist, noise, state = decoder(f0[:, None], ld[:, None], state)
                    a = harmonic_amplitudes(f0[:, None].double(), amp.double(), dist.double(), SR)[:, 0]
                    prev, amps = (amps if amps is not None else a), a
                    filt = noise[:, 0].double() @ matrix.T
                    pos = 0
                n = min(BLOCK - done, hop - pos)
                t = torch.arange(pos + 1, pos + n + 1, dtype=torch.float64) / hop
                w = (2 * math.pi * f0.double() / SR)[:, None].expand(voices, n)
                phi = phase[:, None] + torch.cumsum(w, 1) - w
                phase = (phi[:, -1] + w[:, -1]) % (2 * math.pi)
                ramp = prev[:, None, :] + (amps - prev)[:, None, :] * t[None, :, None]
                y = (ramp * torch.sin(phi[:, :, None] * k)).sum(-1)
                x = torch.rand(voices, n, dtype=torch.float64) * 2 - 1
                full = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (taps - 1, taps - 1))[None],
                                                  filt.flip(-1)[:, None, :], groups=voices)[0]
                full[:, : taps - 1] += noise_tail
                noise_tail = full[:, n:]
                pieces.append((y + full[:, :n]).sum(0))
                done += n
                pos += n
            dry = torch.cat(pieces)
            wet = torch.fft.irfft(torch.fft.rfft(dry, nfft) * ir_spectrum, nfft)
            wet[: nfft - BLOCK] += reverb_tail
            reverb_tail = torch.cat([wet[BLOCK:], torch.zeros(BLOCK, dtype=torch.float64)])[: nfft - BLOCK]
            times[b] = (time.perf_counter_ns() - t0) * 1e-9
    return times


def render_speed(model, seconds: float = 20.0) -> list[dict]:
    """How much faster than real time `timbrel render` and `timbrel transfer` run, one voice.

    Timed end to end as a user runs them: engine set-up, plugin preparation, every block.
    """
    import mido

    song = mido.MidiFile()
    track = mido.MidiTrack()
    song.tracks.append(track)
    rng = np.random.default_rng(0)
    ticks = int(seconds * 2 * song.ticks_per_beat / 40)
    for note in rng.integers(55, 80, 40):
        track.append(mido.Message("note_on", note=int(note), velocity=90, time=0))
        track.append(mido.Message("note_off", note=int(note), velocity=0, time=ticks))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "phrase.mid"
        song.save(path)
        t0 = time.perf_counter()
        audio = render_midi(path, MidiInstrument(model, voices=16), SR, BLOCK)
        midi_speed = audio.shape[0] / SR / (time.perf_counter() - t0)
    n = int(seconds * SR)
    phase = 2 * np.pi * np.cumsum(np.geomspace(150, 600, n)) / SR
    voice = (0.2 * sum(np.sin(k * phase) / k for k in range(1, 8))).astype(np.float32)
    t0 = time.perf_counter()
    render_audio(voice, TimbreTransfer(model), SR, BLOCK)
    transfer_speed = seconds / (time.perf_counter() - t0)
    return [{"path": "timbrel render (one voice at a time)", "x_real_time": midi_speed},
            {"path": "timbrel transfer", "x_real_time": transfer_speed}]


def transfer_latency(model) -> dict:
    """Mic to sound, offline through the live path: a sung-like tone starts at 0.5 s; when does
    the output first come within 40 dB of its held level? Plus the interface's two blocks."""
    t = np.arange(int(1.2 * SR)) / SR
    phase = 2 * np.pi * 220.0 * t
    tone = sum(np.sin(k * phase) / k for k in range(1, 9))
    tone = (0.3 * tone / np.abs(tone).max() * (t >= 0.5)).astype(np.float32)
    plugin = TimbreTransfer(model)
    plugin.params.set("reverb_mix", 0.0)
    out = render_audio(tone, plugin, SR, BLOCK)[:, 0].astype(np.float64)
    envelope = np.sqrt(np.convolve(out**2, np.ones(48) / 48, mode="same"))
    steady = np.median(envelope[int(0.9 * SR) : int(1.1 * SR)])
    response_ms = (np.argmax(envelope > 0.01 * steady) / SR - 0.5) * 1000
    return {"path": "mic to first response (transfer)", "ms": response_ms,
            "ms_with_two_interface_blocks": response_ms + 2000 * BLOCK / SR,
            "reported_latency_ms": 1000 * plugin.latency_samples / SR}


def row(path: str, voices: int, times: np.ndarray) -> dict:
    return {
        "path": path,
        "voices": voices,
        "median_us": float(np.median(times)) * 1e6,
        "p99_us": float(np.percentile(times, 99)) * 1e6,
        "max_us": float(times.max()) * 1e6,
        "core_share_mean": float(times.mean()) / BUDGET_S,
        "p99_share": float(np.percentile(times, 99)) / BUDGET_S,
    }


def voices_within(model, share: float, seconds: float) -> int:
    """Most voices (up to 64) whose p99 block time stays within `share` of the budget."""
    best = 0
    for voices in (1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64):
        if np.percentile(time_midi(model, voices, seconds), 99) / BUDGET_S > share:
            break
        best = voices
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per measurement")
    parser.add_argument("--torch-seconds", type=float, default=2.0)
    parser.add_argument("--model", default=str(default_model()))
    args = parser.parse_args()
    model = load_model(args.model)

    rows = [row("midi instrument", v, time_midi(model, v, args.seconds)) for v in (1, 8, 16, 32)]
    rows.append(row("timbre transfer", 1, time_transfer(model, args.seconds)))
    torch_rows = [row("torch model + synth, block by block", v, time_torch(args.model, v, args.torch_seconds))
                  for v in (1, 16)]
    for r in rows:
        base = next((t for t in torch_rows if t["voices"] == r["voices"] and r["path"] == "midi instrument"), None)
        if base:
            r["speedup_vs_torch"] = base["median_us"] / r["median_us"]
    fit = voices_within(model, 0.7, min(args.seconds, 3.0))
    report("render-speed", render_speed(model), sample_rate=SR, block=BLOCK, target_x_real_time=20)
    report("transfer-latency", [transfer_latency(model)], sample_rate=SR, block=BLOCK, target_ms=25)
    report("engine", rows + torch_rows, sample_rate=SR, block=BLOCK, model=model.info.name,
           voices_within_70_percent=fit,
           targets={"16 voices core share": 0.25, "16 voices p99 share": 0.5, "transfer core share": 0.05})
    print(f"voices within 70 % of the block budget (p99): {fit}")


if __name__ == "__main__":
    main()
