"""Loading a timbre model: one `.onnx` file holding the network and everything about it.

The file carries, in its metadata, a JSON record (`timbrel`) with the model's name, rates
and sizes, the training data's pitch and loudness statistics and the training provenance,
and the reverb impulse response (`timbrel.reverb_ir`, base64 float32). A single file is a
complete, shareable model. Every fault is reported in one line naming the file.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.plugin.expression import STYLE_FIELDS

METADATA_KEY = "timbrel"
IR_KEY = "timbrel.reverb_ir"
FORMAT_VERSION = 1
INPUTS = ("f0_hz", "loudness_db", "state")
OUTPUTS = ("amplitude", "harmonic_distribution", "noise_magnitudes", "new_state")
_REQUIRED = ("name", "sample_rate", "frame_rate", "harmonics", "noise_bands", "hidden", "f0_hz", "loudness_db")


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself. Rates in Hz, statistics of the training data."""

    name: str
    sample_rate: int
    frame_rate: int
    harmonics: int
    noise_bands: int
    hidden: int
    f0_hz: dict
    loudness_db: dict
    provenance: dict = field(default_factory=dict)
    created: str = ""
    timbrel_version: str = ""
    style: dict = field(default_factory=dict)
    """The playing style fitted on the training recordings (`timbrel.plugin.expression`): `fields`
    maps each of `STYLE_FIELDS` to `[c0, c_pitch, c_loudness]`; empty when the model has none."""

    @property
    def model_hop_samples(self) -> int:
        """Samples per frame at the model's own rate (`sample_rate`); `hop_at` gives a host's."""
        return self.sample_rate // self.frame_rate

    @property
    def loudness_range_db(self) -> tuple[float, float]:
        """The training data's usual loudness span, dB: its 5th and 95th percentiles."""
        stats = self.loudness_db
        return float(stats.get("p05", stats["min"])), float(stats.get("p95", stats["max"]))

    @property
    def unfit_note(self) -> str:
        """The training's verdict, "not usable yet: … (from its training)", when the model missed
        the quality bar; "" when it met it or carries no verdict."""
        if self.provenance.get("usable") is not False:
            return ""
        return f"{self.provenance.get('verdict', '')} (from its training)"

    def hop_at(self, sample_rate: int) -> int:
        """Samples per frame at a host rate; the frame rate must divide it."""
        if sample_rate % self.frame_rate:
            raise TimbrelError(f"{self.name}: {self.frame_rate} frames/s does not divide {sample_rate} Hz")
        return sample_rate // self.frame_rate


def session_options():
    """onnxruntime options for per-frame calls: one thread, no spinning, sequential, quiet."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


class TimbreModel:
    """A loaded, validated model: an onnxruntime session plus its `info` and `reverb_ir`.

    `step` runs the network for `[voices, frames]` of pitch (Hz) and loudness (dB) with a
    GRU state `[voices, hidden]`. Load off the audio thread; `step` itself is what the
    engine calls once per frame, batched over voices.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.session = _open_session(self.path)
        self.info, self.reverb_ir = _read_metadata(self.path, self.session)
        _check_signature(self.path, self.session, self.info)
        self.one_frame = self.session.get_inputs()[0].shape[1] == 1
        """Whether the graph steps one frame per call (`timbrel.export.streaming_graph`); older
        files take `[voices, frames]`."""
        self._bytes = self.path.read_bytes()
        self.style = style_array(self.path, self.info.style)
        """The style's coefficients `[len(STYLE_FIELDS), 3]` (zeros without a style)."""

    def open_session(self):
        """A new onnxruntime session of this model, for one player alone (`ModelSynth`): an
        instrument being prepared off the audio thread then never runs a session the audio
        thread is running, which onnxruntime would make one of them wait for."""
        import onnxruntime as ort

        return ort.InferenceSession(self._bytes, sess_options=session_options(), providers=["CPUExecutionProvider"])

    def step(self, f0_hz: np.ndarray, loudness_db: np.ndarray, state: np.ndarray) -> list[np.ndarray]:
        """Amplitude `[V, T]`, distribution `[V, T, K]`, noise `[V, T, N]`, new state `[V, H]`
        (a one-frame graph runs the T frames one call each)."""
        if not self.one_frame or f0_hz.shape[1] == 1:
            return self.session.run(None, {"f0_hz": f0_hz, "loudness_db": loudness_db, "state": state})
        frames = []
        for t in range(f0_hz.shape[1]):
            *controls, state = self.session.run(None, {"f0_hz": np.ascontiguousarray(f0_hz[:, t : t + 1]),
                                                       "loudness_db": np.ascontiguousarray(loudness_db[:, t : t + 1]),
                                                       "state": state})
            frames.append(controls)
        amplitude, distribution, noise = (np.concatenate(parts, axis=1) for parts in zip(*frames))
        return [amplitude, distribution, noise, state]

    def __repr__(self) -> str:
        i = self.info
        return f"TimbreModel({i.name!r}, {i.sample_rate} Hz, {i.frame_rate} frames/s, {i.harmonics} harmonics)"


def style_array(path: Path, style: dict) -> np.ndarray:
    """A style record as coefficients `[len(STYLE_FIELDS), 3]`; a malformed one is a one-line
    TimbrelError naming `path`."""
    array = np.zeros((len(STYLE_FIELDS), 3))
    if not style:
        return array
    fields = style.get("fields") if isinstance(style, dict) else None
    if not isinstance(fields, dict):
        raise TimbrelError(f"{path}: bad style metadata (no 'fields' object)")
    for i, name in enumerate(STYLE_FIELDS):
        values = fields.get(name)
        if (not isinstance(values, list) or len(values) != 3
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in values)):
            raise TimbrelError(f"{path}: bad style metadata ('{name}' must be three finite numbers)")
        array[i] = values
    return array


def load_model(path: str | os.PathLike) -> TimbreModel:
    """Open and validate a model file; raises TimbrelError with the file and the fault."""
    return TimbreModel(path)


def _open_session(path: Path):
    import onnxruntime as ort

    if not path.is_file():
        raise TimbrelError(f"{path}: no such model file")
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises several unrelated types for bad files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TimbrelError(f"{path}: not a loadable ONNX model ({reason[:160]})") from None


def _read_metadata(path: Path, session) -> tuple[ModelInfo, np.ndarray]:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise TimbrelError(f"{path}: not a timbrel model (no '{METADATA_KEY}' metadata); export it with `timbrel export`")
    try:
        record = json.loads(meta[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise TimbrelError(f"{path}: model metadata is not valid JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise TimbrelError(f"{path}: model metadata must be a JSON object")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise TimbrelError(f"{path}: model format {version!r} is not supported (this timbrel reads {FORMAT_VERSION})")
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise TimbrelError(f"{path}: model metadata lacks {', '.join(missing)}")
    try:
        info = ModelInfo(**{k: record[k] for k in ModelInfo.__dataclass_fields__ if k in record})
        ints = (info.sample_rate, info.frame_rate, info.harmonics, info.noise_bands, info.hidden)
        if not all(isinstance(v, int) and v > 0 for v in ints) or info.noise_bands < 2:
            raise ValueError("rates and sizes must be positive integers")
        if info.sample_rate % info.frame_rate:
            raise ValueError(f"frame rate {info.frame_rate} does not divide {info.sample_rate} Hz")
        for stats in (info.f0_hz, info.loudness_db):
            if not isinstance(stats, dict) or not all(isinstance(stats.get(k), (int, float)) for k in ("mean", "std", "min", "max")):
                raise ValueError("f0_hz and loudness_db statistics need mean, std, min and max")
    except (TypeError, ValueError) as err:
        raise TimbrelError(f"{path}: bad model metadata ({err})") from None
    try:
        ir = np.frombuffer(base64.b64decode(meta[IR_KEY], validate=True), dtype="<f4").astype(np.float32)
    except (KeyError, ValueError) as err:
        raise TimbrelError(f"{path}: missing or corrupt reverb impulse response ({type(err).__name__})") from None
    if ir.size == 0 or not np.all(np.isfinite(ir)):
        raise TimbrelError(f"{path}: the reverb impulse response is empty or not finite")
    return info, ir


def _check_signature(path: Path, session, info: ModelInfo) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    for name in INPUTS:
        if name not in inputs:
            raise TimbrelError(f"{path}: the model has no input '{name}' (has {', '.join(inputs)})")
    for name in OUTPUTS:
        if name not in outputs:
            raise TimbrelError(f"{path}: the model has no output '{name}' (has {', '.join(outputs)})")
    want = {
        "f0_hz": 2, "loudness_db": 2, "state": 2,
        "amplitude": 2, "harmonic_distribution": 3, "noise_magnitudes": 3, "new_state": 2,
    }
    for name, rank in want.items():
        arg = inputs.get(name) or outputs[name]
        if len(arg.shape) != rank:
            raise TimbrelError(f"{path}: '{name}' has shape {arg.shape}; expected {rank} dimensions")
        if "float" not in arg.type:
            raise TimbrelError(f"{path}: '{name}' is {arg.type}; expected float")
    fixed = {
        ("state", 1): info.hidden, ("new_state", 1): info.hidden,
        ("harmonic_distribution", 2): info.harmonics, ("noise_magnitudes", 2): info.noise_bands,
    }
    for (name, axis), size in fixed.items():
        dim = (inputs.get(name) or outputs[name]).shape[axis]
        if isinstance(dim, int) and dim != size:
            raise TimbrelError(f"{path}: '{name}' has {dim} on axis {axis} but the metadata says {size}")
    for name in ("f0_hz", "loudness_db"):
        voices, frames = inputs[name].shape
        if isinstance(voices, int) or (isinstance(frames, int) and frames != 1):
            raise TimbrelError(f"{path}: input '{name}' must have axes [voices, frames] or [voices, 1] with any "
                               f"number of voices, has {inputs[name].shape}")
