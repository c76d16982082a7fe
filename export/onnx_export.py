"""Exporting a trained model to one self-describing `.onnx` file, and proving the export.

The exported graph is the decoder's streaming step for one frame, written node by node
(`timbrel.export.streaming_graph`): `f0_hz [voices, 1]`, `loudness_db [voices, 1]`,
`state [voices, hidden]` in; `amplitude`, `harmonic_distribution`, `noise_magnitudes`,
`new_state` out, with dynamic voices. Synthesis stays in the engine's numba kernels. After every export two checks run:
the ONNX graph against torch, and a full render through onnxruntime plus the engine's
kernels against the torch model plus the torch synth.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from timbrel.engine.atomic import write_bytes
from timbrel.engine.dsp import white_noise
from timbrel.engine.errors import TimbrelError
from timbrel.export import synth
from timbrel.export.model import TimbreNetwork
from timbrel.export.streaming_graph import streaming_graph
from timbrel.plugin.model import FORMAT_VERSION, IR_KEY, METADATA_KEY, OUTPUTS, TimbreModel, load_model
from timbrel.plugin.model_synth import resynthesise

PARITY_TOLERANCE = 1e-5
OPSET = 17
IR_VERSION = 8
"""The ONNX file format of opset 17, which onnxruntime has read since 1.11."""
RENDER_TOLERANCE_DB = -60.0


def _timbrel_version() -> str:
    try:
        return version("timbrel")
    except PackageNotFoundError:
        return "unknown"


def metadata_record(model: TimbreNetwork, name: str, f0_stats: dict, loudness_stats: dict, provenance: dict) -> dict:
    """The JSON record stored under the `timbrel` metadata key."""
    c = model.config
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "sample_rate": c.sample_rate,
        "frame_rate": c.frame_rate,
        "hop": c.hop,
        "harmonics": c.harmonics,
        "noise_bands": c.noise_bands,
        "hidden": c.hidden,
        "config": c.to_dict(),
        "f0_hz": f0_stats,
        "loudness_db": loudness_stats,
        "provenance": provenance,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "timbrel_version": _timbrel_version(),
    }


def export_onnx(model: TimbreNetwork, path: str | os.PathLike, *, name: str, f0_stats: dict, loudness_stats: dict,
                provenance: dict, style: dict | None = None) -> Path:
    """Write the model's decoder step, metadata (with its playing `style`, if any) and reverb IR to `path`, atomically."""
    ir = model.impulse_response().detach().numpy().astype("<f4")
    record = metadata_record(model, name, f0_stats, loudness_stats, provenance)
    if style:
        record["style"] = style
    return write_model(streaming_graph(model.decoder.eval(), OPSET), path, name, record, ir)


def write_model(proto, path: str | os.PathLike, name: str, record: dict, ir: np.ndarray) -> Path:
    """Write the decoder graph `proto` (an `onnx.ModelProto`) with its metadata `record` and reverb
    `ir` (float32 `[taps]`) to `path`, atomically."""
    import onnx

    path = Path(path)
    proto.ir_version = IR_VERSION
    proto.producer_name = "timbrel"
    del proto.metadata_props[:]
    for key, value in ((METADATA_KEY, json.dumps(record)), (IR_KEY, base64.b64encode(ir.tobytes()).decode())):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"timbrel timbre model '{name}'"
    onnx.checker.check_model(proto)
    write_bytes(path, proto.SerializeToString())
    return path


def convert_to_streaming(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Rewrite a model file written by torch's exporter (timbrel before the one-frame graph) as the
    one-frame graph, with the same weights, metadata and reverb, at `out` (default: in place),
    atomically; returns the path written. The two graphs' outputs on random inputs must agree
    within `PARITY_TOLERANCE` relative RMS, or nothing is written."""
    import onnx

    from timbrel.export.onnx_import import network_from_model

    path = Path(path)
    old = load_model(path)
    if old.one_frame:
        raise TimbrelError(f"{path}: already a one-frame graph")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    network = network_from_model(path)
    proto = streaming_graph(network.decoder.eval(), OPSET)
    target = Path(out) if out is not None else path
    with tempfile.TemporaryDirectory() as tmp:
        trial = write_model(proto, Path(tmp) / path.name, old.info.name, json.loads(meta[METADATA_KEY]), old.reverb_ir)
        new = load_model(trial)
        rng = np.random.default_rng(0)
        inputs = [rng.uniform(30, 3000, (4, 25)), rng.uniform(-90, 0, (4, 25)), rng.normal(0, 0.5, (4, old.info.hidden))]
        inputs = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
        worst = max(_relative_rms(g, e) for g, e in zip(new.step(*inputs), old.step(*inputs)))
        if not worst <= PARITY_TOLERANCE:
            raise TimbrelError(f"{path}: the one-frame graph differs from the file by {worst:.2e} relative RMS")
        write_bytes(target, trial.read_bytes())
    return target


def check_export(model: TimbreNetwork, path: str | os.PathLike, f0_hz: np.ndarray, loudness_db: np.ndarray,
                 seed: int = 0, shown_as: str | os.PathLike | None = None) -> dict:
    """Prove an export: each ONNX step equals the torch step within 1e-5 (relative RMS per
    output), and the engine render equals the torch render within -60 dB.

    The steps are compared frame by frame, each frame fed the state torch reached, so the
    check sees the graph rather than the model's conditioning: a trained GRU can amplify
    float32 rounding over hundreds of frames (the factory tuba, after 3400 steps, turns
    1e-7 into 2e-5 on a 600-frame sweep, and torch's own float32 run is 1.4e-4 from the
    float64 one), while a weight off by 0.1 % moves single steps by 5e-5 or more. The
    free-running difference is reported as `onnx_vs_torch_{case}_run`; the render check
    bounds what it does to the sound.

    `f0_hz`, `loudness_db`: a real validation clip, `[frames]`. Returns the measured
    figures; raises TimbrelError naming `shown_as` (default `path`) when a check fails.
    """
    runtime = load_model(path)
    shown = shown_as or path
    decoder = model.decoder.eval()
    rng = np.random.default_rng(seed)
    hidden = model.config.hidden
    cases = {
        "random": (rng.uniform(30, 3000, (4, 25)), rng.uniform(-90, 0, (4, 25)), rng.normal(0, 0.5, (4, hidden))),
        "real": (f0_hz[None], loudness_db[None], np.zeros((1, hidden))),
    }
    figures = {}
    for label, inputs in cases.items():
        inputs = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
        with torch.no_grad():
            expected = [t.numpy() for t in decoder(*(torch.from_numpy(a) for a in inputs))]
        got = runtime.step(*inputs)
        figures[f"onnx_vs_torch_{label}_run"] = max(_relative_rms(g, e) for g, e in zip(got, expected))
        worst, largest = _stepwise_difference(decoder, runtime, inputs)
        figures[f"onnx_vs_torch_{label}"], figures[f"onnx_vs_torch_{label}_max_abs"] = worst, largest
        if not worst <= PARITY_TOLERANCE:
            raise TimbrelError(f"{shown}: ONNX differs from torch by {worst:.2e} relative RMS per step on {label} "
                               f"inputs (limit {PARITY_TOLERANCE:g})")
    engine_audio = resynthesise(runtime, f0_hz, loudness_db, seed)
    torch_audio = _render_with_torch(model, f0_hz, loudness_db, seed)
    error = engine_audio - torch_audio
    error_db = 10 * np.log10(np.sum(error**2) / max(np.sum(torch_audio**2), 1e-20) + 1e-30)
    figures["render_error_db"] = float(error_db)
    if not error_db <= RENDER_TOLERANCE_DB:
        raise TimbrelError(f"{shown}: engine render differs from torch by {error_db:.1f} dB (limit {RENDER_TOLERANCE_DB:g} dB)")
    return figures


def _stepwise_difference(decoder: torch.nn.Module, runtime: TimbreModel, inputs: list[np.ndarray]) -> tuple[float, float]:
    """ONNX against torch one frame at a time, both starting each frame from torch's state.

    Returns the worst relative RMS over the outputs (each pooled over all frames) and the
    largest absolute difference.
    """
    f0_hz, loudness_db, state = inputs
    steps: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
    with torch.no_grad():
        for i in range(f0_hz.shape[1]):
            frame = [np.ascontiguousarray(f0_hz[:, i : i + 1]), np.ascontiguousarray(loudness_db[:, i : i + 1]), state]
            expected = [t.numpy() for t in decoder(*(torch.from_numpy(a) for a in frame))]
            steps.append((runtime.step(*frame), expected))
            state = np.ascontiguousarray(expected[3])
    worst = largest = 0.0
    for k in range(len(OUTPUTS)):
        got = np.stack([g[k] for g, _ in steps], axis=1)
        expected = np.stack([e[k] for _, e in steps], axis=1)
        worst = max(worst, _relative_rms(got, expected))
        largest = max(largest, float(np.max(np.abs(got - expected))))
    return worst, largest


def _relative_rms(got: np.ndarray, expected: np.ndarray) -> float:
    """`rms(got - expected) / rms(expected)`: the parity metric used throughout timbrel.

    Element-wise maxima mislead on recurrent state: after hundreds of GRU steps, float32
    rounding in a different operation order moves single state values by ~1e-5 while the
    controls the synth uses stay within ~1e-6. Both figures are reported.
    """
    scale = float(np.sqrt(np.mean(expected.astype(np.float64) ** 2)))
    return float(np.sqrt(np.mean((got.astype(np.float64) - expected) ** 2))) / max(scale, 1e-30)


def _render_with_torch(model: TimbreNetwork, f0_hz: np.ndarray, loudness_db: np.ndarray, seed: int) -> np.ndarray:
    """The torch model and torch synth, fed the engine's noise stream so the two can agree."""
    c = model.config
    f0 = torch.from_numpy(np.asarray(f0_hz, dtype=np.float32))[None]
    ld = torch.from_numpy(np.asarray(loudness_db, dtype=np.float32))[None]
    with torch.no_grad():
        amp, dist, mags = model.controls(f0, ld)
        noise = torch.from_numpy(white_noise(f0.shape[1] * c.hop, seed, 0)).to(mags.dtype)[None]
        dry = synth.harmonic_synth(f0, amp, dist, c.sample_rate, c.hop)
        dry = dry + synth.filtered_noise(mags, c.sample_rate, c.hop, noise=noise)
        out = synth.reverb(dry, model.impulse_response(), 1.0)
    return out[0].double().numpy()
