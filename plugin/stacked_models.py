"""Several models of the same shape run as one onnxruntime call: an ensemble's stacked networks.

An ensemble of parts playing different instruments would call onnxruntime once per model and
frame, and each call costs the framework's own fixed work, more on cold caches, where every
session's nodes, plans and buffers are memory of its own (`bench.bench_stack`: 8 models of 2
voices take 152 µs as 8 calls and 93 µs as one on warm caches, 226 and 161 µs on cold ones).
Every model `timbrel export` writes has the same graph for its sizes
(`timbrel.export.streaming_graph`; all 13 factory models share one); only the weights
differ. `StackedRunner` builds one graph over M such models that runs the same layers with a
leading model axis: each Dense layer becomes a batched MatMul over `[M, voices, in] x [M,
in, out]`, and the GRU cell is written out in ONNX's own equations (gates z, r, h;
`linear_before_reset`), since the GRU operator takes one set of weights. Outputs match each
model's own session to float32 rounding (`tests/test_stacked_models.py`).

The weights are read from the model files with `timbrel.plugin.onnx_wire` and folded as the
files' own constant nodes fold them. A model whose graph differs in any node, attribute or
constant (another exporter) is not stackable and keeps its own session; an ensemble makes
one stack for each `stack_shape` (layers, GRU size, units) that two or more of its models share.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from timbrel.plugin import voices as vk
from timbrel.plugin.model import OUTPUTS, TimbreModel, session_options
from timbrel.plugin.model_synth import Shelf
from timbrel.plugin.onnx_wire import Node, read_graph, write_model

_HEAD = (
    ("Clip", "f0_hz midi_floor_hz", "f0_clipped"),
    ("Log", "f0_clipped", "log_f0"),
    ("Concat", "log_f0 loudness_db", "stacks_in"),
    ("Mul", "stacks.0.f0_weight f0_scale", "fold.f0_weight"),
    ("Mul", "stacks.0.loudness_weight loudness_scale", "fold.loudness_weight"),
    ("Concat", "fold.f0_weight zeros_row", "fold.f0_row"),
    ("Concat", "zeros_row fold.loudness_weight", "fold.loudness_row"),
    ("Concat", "fold.f0_row fold.loudness_row", "stacks.0.weight"),
    ("Mul", "stacks.0.f0_weight f0_offset", "fold.f0_shift"),
    ("Add", "stacks.0.f0_bias fold.f0_shift", "fold.f0_bias"),
    ("Add", "stacks.0.loudness_bias stacks.0.loudness_weight", "fold.loudness_bias"),
    ("Concat", "fold.f0_bias fold.loudness_bias", "stacks.0.bias"),
)
_TAIL = (
    ("Sigmoid", "raw", "sigmoid"),
    ("Pow", "sigmoid exponent", "power"),
    ("Mul", "power two", "doubled"),
    ("Add", "doubled floor", "controls"),
    ("Split", "controls splits", "amplitude distribution_2d noise_2d"),
    ("Unsqueeze", "distribution_2d axis_1", "harmonic_distribution"),
    ("Unsqueeze", "noise_2d axis_1", "noise_magnitudes"),
)


def layout(layers: int) -> tuple[tuple[str, str, str], ...]:
    """The nodes `timbrel.export.streaming_graph` writes for `layers` layers per stack: operator,
    inputs and outputs (space-separated; an empty name is an omitted optional input or output)."""
    nodes = list(_HEAD)
    x = "stacks_in"
    for layer in range(layers):
        s = f"stacks.{layer}"
        nodes += [("Gemm", f"{x} {s}.weight {s}.bias", f"{s}.dense"),
                  ("Reshape", f"{s}.dense side_by_side", f"{s}.pair"),
                  ("LayerNormalization", f"{s}.pair ones zeros", f"{s}.normal"),
                  ("Mul", f"{s}.normal {s}.norm_weight", f"{s}.scaled"),
                  ("Add", f"{s}.scaled {s}.norm_bias", f"{s}.shifted"),
                  ("LeakyRelu", f"{s}.shifted", f"{s}.act"),
                  ("Reshape", f"{s}.act joined", f"{s}.out")]
        x = f"{s}.out"
    nodes += [("Unsqueeze", f"{x} axis_0", "gru.x"), ("Unsqueeze", "state axis_0", "gru.h0"),
              ("GRU", "gru.x gru.W gru.R gru.B  gru.h0", " gru.h1"), ("Squeeze", "gru.h1 axis_0", "new_state"),
              ("Concat", f"new_state {x}", "out_stack.in")]
    x = "out_stack.in"
    for layer in range(layers):
        s = f"out_stack.{layer}"
        nodes += [("Gemm", f"{x} {s}.weight {s}.bias", f"{s}.dense"),
                  ("LayerNormalization", f"{s}.dense {s}.norm_weight {s}.norm_bias", f"{s}.normal"),
                  ("LeakyRelu", f"{s}.normal", f"{s}.out")]
        x = f"{s}.out"
    return (*nodes, ("Gemm", f"{x} out.weight out.bias", "raw"), *_TAIL)


EPSILON, LEAK = np.float32(1e-5), np.float32(0.2)
_SCALARS = ("midi_floor_hz", "exponent", "two", "floor")
"""Per-model constants the stacked graph takes as `[M, 1, 1]` tensors."""


def stack_weights(model: TimbreModel) -> dict[str, np.ndarray] | str:
    """`model`'s network as the stacked graph takes it (folded, `[in, out]` layouts), or, when
    its graph is not one `layout` describes, the reason in a few words."""
    try:
        graph = read_graph(model._bytes)
    except ValueError as err:
        return f"unreadable graph ({err})"
    nodes = tuple((n.op_type, " ".join(n.inputs), " ".join(n.outputs)) for n in graph.nodes)
    layers = (sum(op == "Gemm" for op, _, _ in nodes) - 1) // 2
    if layers < 1 or nodes != layout(layers):
        return "its graph is not the streaming graph timbrel export writes"
    hidden = model.info.hidden
    for node in graph.nodes:
        attributes = node.attributes
        if node.op_type == "LayerNormalization" and (attributes.get("axis") != -1
                                                     or np.float32(attributes.get("epsilon", 0)) != EPSILON):
            return "another layer norm"
        if node.op_type == "LeakyRelu" and np.float32(attributes.get("alpha", 0)) != LEAK:
            return "another leak"
        if node.op_type == "GRU" and (attributes.get("linear_before_reset") != 1
                                      or attributes.get("hidden_size") != hidden or len(attributes) != 2):
            return "another GRU"
        if node.op_type in ("Gemm", "Clip", "Pow") and attributes:
            return f"{node.op_type} with attributes"
    w = graph.initializers
    try:
        units = w["stacks.0.f0_weight"].shape[-1]
        out_units = w["out_stack.0.weight"].shape[-1]
        outputs = 1 + model.info.harmonics + model.info.noise_bands
        expected = {
            "stacks.0.f0_weight": (1, units), "stacks.0.loudness_weight": (1, units), "stacks.0.f0_bias": (units,),
            "stacks.0.loudness_bias": (units,),
            "gru.W": (1, 3 * hidden, 2 * units), "gru.R": (1, 3 * hidden, hidden), "gru.B": (1, 6 * hidden),
            "out_stack.0.weight": (hidden + 2 * units, out_units), "out.weight": (out_units, outputs),
            "out.bias": (outputs,), "zeros_row": (1, units), "ones": (units,), "zeros": (units,),
            **{name: () for name in (*_SCALARS, "f0_scale", "f0_offset", "loudness_scale")}}
        for layer in range(layers):
            s, o = f"stacks.{layer}", f"out_stack.{layer}"
            expected.update({f"{s}.norm_weight": (2, units), f"{s}.norm_bias": (2, units), f"{o}.bias": (out_units,),
                             f"{o}.norm_weight": (out_units,), f"{o}.norm_bias": (out_units,)})
            if layer:
                expected.update({f"{s}.weight": (2 * units, 2 * units), f"{s}.bias": (2 * units,),
                                 f"{o}.weight": (out_units, out_units)})
        if any(w[name].shape != shape or w[name].dtype != np.float32 for name, shape in expected.items()):
            return "another tensor shape"
        fixed = {"side_by_side": [-1, 2, units], "joined": [-1, 2 * units], "axis_0": [0], "axis_1": [1],
                 "splits": [1, model.info.harmonics, model.info.noise_bands]}
        if (any(w[name].tolist() != value for name, value in fixed.items()) or np.any(w["ones"] != 1)
                or np.any(w["zeros"] != 0) or np.any(w["zeros_row"] != 0)):
            return "another constant"
    except KeyError as err:
        return f"no initializer {err}"
    f0_weight = w["stacks.0.f0_weight"] * w["f0_scale"]
    loudness_weight = w["stacks.0.loudness_weight"] * w["loudness_scale"]
    zeros = w["zeros_row"]
    gru_bias = w["gru.B"][0]
    weights = {
        "stacks0_w": np.concatenate([np.concatenate([f0_weight, zeros], axis=1),
                                     np.concatenate([zeros, loudness_weight], axis=1)]),
        "stacks0_b": np.concatenate([w["stacks.0.f0_bias"] + w["stacks.0.f0_weight"] * w["f0_offset"],
                                     w["stacks.0.loudness_bias"] + w["stacks.0.loudness_weight"]], axis=1),
        "gru_w": w["gru.W"][0].T, "gru_r": w["gru.R"][0].T,
        "gru_bw": gru_bias[None, : 3 * hidden], "gru_br": gru_bias[None, 3 * hidden:],
        "out_w": w["out.weight"], "out_b": w["out.bias"][None],
        **{name: w[name].reshape(1, 1) for name in _SCALARS},
    }
    for layer in range(layers):
        s, o = f"stacks.{layer}", f"out_stack.{layer}"
        if layer:
            weights[f"stacks{layer}_w"], weights[f"stacks{layer}_b"] = w[f"{s}.weight"], w[f"{s}.bias"][None]
        weights[f"stacks{layer}_nw"] = w[f"{s}.norm_weight"][None]
        weights[f"stacks{layer}_nb"] = w[f"{s}.norm_bias"][None]
        weights[f"out{layer}_w"], weights[f"out{layer}_b"] = w[f"{o}.weight"], w[f"{o}.bias"][None]
        weights[f"out{layer}_nw"], weights[f"out{layer}_nb"] = w[f"{o}.norm_weight"][None], w[f"{o}.norm_bias"][None]
    return weights


def stack_shape(weights: dict[str, np.ndarray]) -> tuple[int, int, int, int]:
    """What networks must share to stack: layers per stack, GRU size, stack units, output units."""
    layers = sum(name.startswith("out") and name.endswith("_nw") for name in weights)
    return layers, weights["gru_r"].shape[0], weights["stacks0_nw"].shape[-1], weights["out0_w"].shape[-1]


def stacked_graph(weights: Sequence[dict[str, np.ndarray]], harmonics: int, bands: int) -> bytes:
    """One ONNX model running the networks whose `stack_weights` are `weights` (M of them, one
    `stack_shape`): inputs `f0_hz`, `loudness_db` `[M, voices, 1]` and `state` `[M, voices, hidden]`;
    outputs `amplitude` `[M, voices, 1]`, `harmonic_distribution` `[M, voices, harmonics]`,
    `noise_magnitudes` `[M, voices, bands]`, `new_state` `[M, voices, hidden]`."""
    models = len(weights)
    layers, hidden, units, out_units = stack_shape(weights[0])
    initializers = {name: np.ascontiguousarray(np.stack([w[name] for w in weights]), dtype=np.float32)
                    for name in weights[0]}
    initializers.update({
        "ones": np.ones(units, np.float32), "zeros": np.zeros(units, np.float32),
        "out_ones": np.ones(out_units, np.float32), "out_zeros": np.zeros(out_units, np.float32),
        "pair": np.array([0, 0, 2, units], np.int64), "joined": np.array([0, 0, 2 * units], np.int64),
        "gates": np.array([hidden] * 3, np.int64), "splits": np.array([1, harmonics, bands], np.int64),
    })
    nodes: list[Node] = []

    def node(op: str, inputs: str, output: str, **attributes: float) -> str:
        nodes.append(Node(op, tuple(inputs.split()), tuple(output.split()), attributes))
        return output

    def dense(x: str, name: str) -> str:
        """`x @ {name}_w + {name}_b`, a Dense layer batched over the models."""
        product = node("MatMul", f"{x} {name}_w", f"{name}.product")
        return node("Add", f"{product} {name}_b", f"{name}.dense")

    def normalised(x: str, name: str, ones: str, zeros: str) -> str:
        """LayerNorm over the last axis, each model's scale and offset, then the leaky ReLU."""
        normal = node("LayerNormalization", f"{x} {ones} {zeros}", f"{name}.normal", axis=-1, epsilon=float(EPSILON))
        scaled = node("Mul", f"{normal} {name}_nw", f"{name}.scaled")
        shifted = node("Add", f"{scaled} {name}_nb", f"{name}.shifted")
        return node("LeakyRelu", shifted, f"{name}.act", alpha=float(LEAK))

    node("Max", "f0_hz midi_floor_hz", "f0_clipped")
    node("Log", "f0_clipped", "log_f0")
    x = node("Concat", "log_f0 loudness_db", "stacks_in", axis=2)
    for layer in range(layers):
        name = f"stacks{layer}"
        pair = node("Reshape", f"{dense(x, name)} pair", f"{name}.pair")
        x = node("Reshape", f"{normalised(pair, name, 'ones', 'zeros')} joined", f"{name}.out")
    stacks = x
    node("MatMul", f"{stacks} gru_w", "x_gates0")
    node("Add", "x_gates0 gru_bw", "x_gates")
    node("MatMul", "state gru_r", "h_gates0")
    node("Add", "h_gates0 gru_br", "h_gates")
    node("Split", "x_gates gates", "x_z x_r x_h", axis=2)
    node("Split", "h_gates gates", "h_z h_r h_h", axis=2)
    node("Add", "x_z h_z", "z_in")
    node("Sigmoid", "z_in", "z")
    node("Add", "x_r h_r", "r_in")
    node("Sigmoid", "r_in", "r")
    node("Mul", "r h_h", "r_h")
    node("Add", "x_h r_h", "candidate_in")
    node("Tanh", "candidate_in", "candidate")
    node("Sub", "state candidate", "kept")
    node("Mul", "z kept", "z_kept")
    node("Add", "candidate z_kept", "new_state")
    x = node("Concat", f"new_state {stacks}", "out_in", axis=2)
    for layer in range(layers):
        x = normalised(dense(x, f"out{layer}"), f"out{layer}", "out_ones", "out_zeros")
    node("Sigmoid", dense(x, "out"), "sigmoid")
    node("Pow", "sigmoid exponent", "power")
    node("Mul", "power two", "doubled")
    node("Add", "doubled floor", "controls")
    node("Split", "controls splits", "amplitude harmonic_distribution noise_magnitudes", axis=2)
    inputs = {"f0_hz": (models, "voices", 1), "loudness_db": (models, "voices", 1), "state": (models, "voices", hidden)}
    outputs = {"amplitude": (models, "voices", 1), "harmonic_distribution": (models, "voices", harmonics),
               "noise_magnitudes": (models, "voices", bands), "new_state": (models, "voices", hidden)}
    return write_model(nodes, initializers, inputs, outputs)


class StackedRunner:
    """One onnxruntime session running `models` (all stackable, of one shape) for up to
    `voices` voices each, with its buffers and an IO binding per width, made here, off the
    audio thread. Model m plays the voices of the ensemble's runner `runners[m]`. `weights`
    are the models' `stack_weights` when the caller has them already."""

    def __init__(self, models: Sequence[TimbreModel], runners: Sequence[int], voices: int,
                 weights: Sequence[dict[str, np.ndarray]] | None = None):
        import onnxruntime as ort

        info = models[0].info
        weights = [stack_weights(model) for model in models] if weights is None else weights
        if any(isinstance(w, str) or stack_shape(w) != stack_shape(weights[0]) for w in weights):
            raise ValueError("the models do not stack")
        self.shape = stack_shape(weights[0])
        """The models' `stack_shape`."""
        self.models = tuple(models)
        self.runners = np.array(runners, dtype=np.int64)
        self.voices = int(voices)
        rows = len(models) * self.voices
        h = info.hidden
        self._in = (np.zeros((rows, 1), np.float32), np.zeros((rows, 1), np.float32), np.zeros((rows, h), np.float32))
        self._out = (np.zeros((rows, 1), np.float32), np.zeros((rows, 1, info.harmonics), np.float32),
                     np.zeros((rows, 1, info.noise_bands), np.float32), np.zeros((rows, h), np.float32))
        graph = stacked_graph(weights, info.harmonics, info.noise_bands)
        self.session = ort.InferenceSession(graph, sess_options=session_options(), providers=["CPUExecutionProvider"])
        self._bindings = [None] + [self._bind(width) for width in range(1, self.voices + 1)]
        for binding in self._bindings[1:]:
            self.session.run_with_iobinding(binding)  # plan each width here, not on the audio thread
        self.key: tuple = ()
        """Its key on the shelf (`take_stack`)."""
        self.muted_frames = 0
        """Voice-frames muted because a model produced NaN or inf."""
        self.runs = 0
        """onnxruntime calls made by `run` so far."""

    def _bind(self, width: int):
        models = len(self.models)
        binding = self.session.io_binding()
        for name, array in zip(("f0_hz", "loudness_db", "state"), self._in):
            binding.bind_input(name, "cpu", 0, np.float32, [models, width, array.shape[-1]], array.ctypes.data)
        for name, array in zip(OUTPUTS, self._out):
            binding.bind_output(name, "cpu", 0, np.float32, [models, width, array.shape[-1]], array.ctypes.data)
        return binding

    def run(self, orders: np.ndarray, batches: np.ndarray, f0_hz: np.ndarray, loudness_db: np.ndarray,
            scale: np.ndarray, tilt: np.ndarray, noise_gain: np.ndarray, gru: np.ndarray, frame: tuple) -> None:
        """Run every stacked model once for its voices (runner r's are `orders[r, :batches[r]]`,
        indices into the per-voice arrays, as `ModelRunner.run` takes them), and write their
        synth frames. The runners it ran have their batch set to 0: what is left is not stacked."""
        width = vk.gather_stacked(self.runners, orders, batches, f0_hz, loudness_db, gru, *self._in)
        if width == 0:
            return
        self.session.run_with_iobinding(self._bindings[width])
        self.runs += 1
        self.muted_frames += vk.scatter_stacked(self.runners, orders, batches, width, scale, tilt, noise_gain, *self._out,
                                                frame[1], frame[2], frame[3], gru)


STACKS = Shelf()
"""Stacked runners between ensembles, by `(model ids, runner indices, voices)`."""


def take_stack(models: Sequence[TimbreModel], runners: Sequence[int], voices: int,
               weights: Sequence[dict[str, np.ndarray]] | None = None) -> StackedRunner:
    """A `StackedRunner` of `models` (ensemble runners `runners`) that no ensemble is using."""
    key = (tuple(id(m) for m in models), tuple(runners), int(voices))
    stack = STACKS.take(key, lambda: StackedRunner(models, runners, voices, weights))
    stack.key = key
    stack.muted_frames = stack.runs = 0
    return stack


def give_back_stack(stack: StackedRunner) -> None:
    """Keep `stack` for the next ensemble of the same models (`take_stack`)."""
    STACKS.give_back(stack.key, stack)
