"""The timbre model: a DDSP RnnFcDecoder-style network and the synth it drives.

`Decoder` maps pitch and loudness, frame by frame, to raw synth controls; it is what gets
exported to ONNX and runs live. `TimbreNetwork` adds the learned reverb and renders audio
with the torch twin of the engine's kernels, for training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from timbrel.export import synth

NOISE_BIAS = -5.0


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and rates of a model. The defaults give about 0.3M parameters (1.3 MB).

    300 frames/s divides 44.1, 48 and 96 kHz, so the engine plays a model at any of them
    with a whole number of samples per hop (docs/DSP.md).
    """

    sample_rate: int = 48000
    frame_rate: int = 300
    harmonics: int = 64
    noise_bands: int = 65
    units: int = 128
    layers: int = 2
    hidden: int = 128
    reverb_seconds: float = 1.0

    @property
    def hop(self) -> int:
        """Samples per frame at the model's rate."""
        return self.sample_rate // self.frame_rate

    def __post_init__(self) -> None:
        if self.sample_rate % self.frame_rate:
            raise ValueError(f"frame_rate {self.frame_rate} must divide sample_rate {self.sample_rate}")
        if self.harmonics < 1 or self.noise_bands < 2:
            raise ValueError("a model needs at least 1 harmonic and 2 noise bands")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def exp_sigmoid(x: Tensor) -> Tensor:
    """DDSP's output nonlinearity: `2 * sigmoid(x) ** ln(10) + 1e-7`, in (1e-7, 2)."""
    return 2.0 * torch.sigmoid(x) ** math.log(10.0) + 1e-7


def hz_to_midi(f0_hz: Tensor) -> Tensor:
    """MIDI note number of a frequency; 0 Hz (unvoiced) maps to the bottom of the range."""
    return 12.0 * torch.log2(torch.clamp(f0_hz, min=8.176) / 440.0) + 69.0


def _stack(inputs: int, units: int, layers: int) -> nn.Sequential:
    parts: list[nn.Module] = []
    for i in range(layers):
        parts += [nn.Linear(inputs if i == 0 else units, units), nn.LayerNorm(units), nn.LeakyReLU(0.2)]
    return nn.Sequential(*parts)


class Decoder(nn.Module):
    """Pitch and loudness to synth controls, one GRU step per frame.

    Each input goes through its own Dense-LayerNorm-LeakyReLU stack, a GRU runs over their
    concatenation, and its output joins the input stacks in an output stack and a final
    linear layer. Input scaling is inside: `midi(f0) / 127` and `loudness_db / 80 + 1`.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        u, layers = config.units, config.layers
        self.f0_stack = _stack(1, u, layers)
        self.loudness_stack = _stack(1, u, layers)
        self.gru = nn.GRU(2 * u, config.hidden, batch_first=True)
        self.out_stack = _stack(config.hidden + 2 * u, u, layers)
        self.out = nn.Linear(u, 1 + config.harmonics + config.noise_bands)
        with torch.no_grad():
            self.out.bias[1 + config.harmonics :] = NOISE_BIAS

    def forward(self, f0_hz: Tensor, loudness_db: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Controls for `[voices, frames]` of pitch (Hz) and loudness (dB).

        `state` is the GRU state `[voices, hidden]`. Returns amplitude `[voices, frames]`,
        harmonic distribution `[voices, frames, K]`, noise magnitudes `[voices, frames, N]`
        (all linear, positive) and the new state `[voices, hidden]`.
        """
        f0 = (hz_to_midi(f0_hz) / 127.0).unsqueeze(-1)
        ld = (loudness_db / 80.0 + 1.0).unsqueeze(-1)
        a, b = self.f0_stack(f0), self.loudness_stack(ld)
        x, new_state = self.gru(torch.cat([a, b], dim=-1), state.unsqueeze(0))
        raw = self.out(self.out_stack(torch.cat([x, a, b], dim=-1)))
        k = self.config.harmonics
        controls = exp_sigmoid(raw)
        return controls[..., 0], controls[..., 1 : 1 + k], controls[..., 1 + k :], new_state.squeeze(0)

    def initial_state(self, voices: int) -> Tensor:
        return torch.zeros(voices, self.config.hidden)


class TimbreNetwork(nn.Module):
    """Decoder plus synth plus learned reverb: pitch and loudness in, audio out (training)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.decoder = Decoder(config)
        taps = int(config.reverb_seconds * config.sample_rate)
        t = torch.arange(taps) / config.sample_rate
        generator = torch.Generator().manual_seed(0)
        init = (torch.rand(taps, generator=generator) * 2 - 1) * torch.exp(-t / 0.05) * 0.01
        self.reverb_ir = nn.Parameter(init)

    def impulse_response(self) -> Tensor:
        """The reverb's impulse response `[taps]`: the dry path as tap 0, then the learned tail."""
        ir = self.reverb_ir.clone()
        ir[0] = 1.0
        return ir

    def controls(self, f0_hz: Tensor, loudness_db: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Decoder outputs for whole clips `[batch, frames]`, from a zero state."""
        amp, dist, noise, _ = self.decoder(f0_hz, loudness_db, self.decoder.initial_state(f0_hz.shape[0]).to(f0_hz))
        return amp, dist, noise

    def forward(self, f0_hz: Tensor, loudness_db: Tensor) -> Tensor:
        """Render `[batch, frames * hop]` audio from `[batch, frames]` pitch (Hz) and loudness (dB)."""
        c = self.config
        amp, dist, noise = self.controls(f0_hz, loudness_db)
        dry = synth.harmonic_synth(f0_hz, amp, dist, c.sample_rate, c.hop)
        dry = dry + synth.filtered_noise(noise, c.sample_rate, c.hop)
        return synth.reverb(dry, self.impulse_response(), 1.0)
