"""The decoder as the engine runs it: one frame per call, written node by node.

onnxruntime's cost for a call of these small networks is mostly per node, not per
multiply-add: each node is a kernel launch, an allocation plan entry and code that has
gone cold since the previous block (`bench/bench_network.py`). The TorchScript exporter
writes the general `[voices, frames]` step in 39 nodes once onnxruntime has optimised it;
this graph computes the same step for one frame in 25:

- the inputs' scaling (`midi(f0) / 127`, `loudness_db / 80 + 1`) is folded into the first
  Dense layer, and the pitch and loudness stacks run side by side: one Gemm with a
  block-diagonal weight, one LayerNorm over a `[voices, 2, units]` view (scale and offset
  per stack applied after it), one LeakyReLU. The file keeps torch's own first-layer
  weights and does the folding in nodes that read only initializers, which onnxruntime
  computes once when it opens the session: what runs per call is the one Gemm, and the
  weights read back exactly;
- 2-D tensors throughout, so each Dense layer is one Gemm and the GRU needs no transposes;
- the three outputs come from one Split.

Initializers are named for what they hold (`stacks.L.weight`, `gru.W`, `out_stack.L.bias`,
...), so `timbrel.export.onnx_import` reads them back into a torch network. The file's
input shapes say `[voices, 1]`; `TimbreModel.step` runs longer inputs frame by frame.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from timbrel.export.model import Decoder

MIDI_FLOOR_HZ = np.float32(8.176)
"""`hz_to_midi`'s clamp."""
F0_SCALE = 12.0 / math.log(2.0) / 127.0
"""`midi(f0) / 127` is `F0_SCALE * ln(f0) + F0_OFFSET`."""
F0_OFFSET = (69.0 - 12.0 * math.log2(440.0)) / 127.0
LOUDNESS_SCALE = 1.0 / 80.0
"""`loudness_db / 80 + 1`."""
LN_EPSILON = 1e-5
LEAK = 0.2
GATES = np.r_[1, 0, 2]
"""torch's GRU gate blocks (reset, update, new) in ONNX's order (update, reset, new); the
permutation is its own inverse."""


def gate_rows(hidden: int) -> np.ndarray:
    """Row indices that reorder a `[3 * hidden, ...]` GRU tensor between torch and ONNX."""
    return np.concatenate([np.arange(g * hidden, (g + 1) * hidden) for g in GATES])


def _one_to_one(layers: int) -> list[tuple[str, str, bool]]:
    """`(graph name, torch name, transposed)` of the tensors the graph holds as torch does: the
    output stack and the output layer (Dense weights transposed to `[in, out]`)."""
    pairs = [("out.weight", "out.weight", True), ("out.bias", "out.bias", False)]
    for layer in range(layers):
        lin, norm = 3 * layer, 3 * layer + 1
        pairs += [(f"out_stack.{layer}.weight", f"out_stack.{lin}.weight", True),
                  (f"out_stack.{layer}.bias", f"out_stack.{lin}.bias", False),
                  (f"out_stack.{layer}.norm_weight", f"out_stack.{norm}.weight", False),
                  (f"out_stack.{layer}.norm_bias", f"out_stack.{norm}.bias", False)]
    return pairs


def streaming_tensors(decoder: Decoder) -> dict[str, np.ndarray]:
    """The one-frame graph's weights from a torch decoder, float32 by name: torch's own values,
    transposed to `[in, out]`, stacked or placed block-diagonally, never rescaled."""
    c = decoder.config
    u, h = c.units, c.hidden
    p = {k: v.detach().double().numpy() for k, v in decoder.state_dict().items()}
    out: dict[str, np.ndarray] = {}
    for layer in range(c.layers):
        lin, norm = 3 * layer, 3 * layer + 1
        wf, wl = p[f"f0_stack.{lin}.weight"].T, p[f"loudness_stack.{lin}.weight"].T
        bf, bl = p[f"f0_stack.{lin}.bias"], p[f"loudness_stack.{lin}.bias"]
        if layer == 0:
            out["stacks.0.f0_weight"], out["stacks.0.loudness_weight"] = wf, wl
            out["stacks.0.f0_bias"], out["stacks.0.loudness_bias"] = bf, bl
        else:
            weight = np.zeros((2 * u, 2 * u))
            weight[:u, :u], weight[u:, u:] = wf, wl
            out[f"stacks.{layer}.weight"], out[f"stacks.{layer}.bias"] = weight, np.concatenate([bf, bl])
        out[f"stacks.{layer}.norm_weight"] = np.stack([p[f"f0_stack.{norm}.weight"], p[f"loudness_stack.{norm}.weight"]])
        out[f"stacks.{layer}.norm_bias"] = np.stack([p[f"f0_stack.{norm}.bias"], p[f"loudness_stack.{norm}.bias"]])
    rows = gate_rows(h)
    out["gru.W"] = p["gru.weight_ih_l0"][rows][None]
    out["gru.R"] = p["gru.weight_hh_l0"][rows][None]
    out["gru.B"] = np.concatenate([p["gru.bias_ih_l0"][rows], p["gru.bias_hh_l0"][rows]])[None]
    for name, torch_name, transposed in _one_to_one(c.layers):
        out[name] = p[torch_name].T if transposed else p[torch_name]
    return {k: v.astype(np.float32) for k, v in out.items()}


def decoder_state(tensors: dict[str, np.ndarray], units: int, layers: int, hidden: int) -> dict[str, torch.Tensor]:
    """The torch decoder's `state_dict` from `streaming_tensors`' weights, exactly."""
    u = units
    p = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}
    state: dict[str, np.ndarray] = {}
    for layer in range(layers):
        lin, norm = 3 * layer, 3 * layer + 1
        if layer == 0:
            state["f0_stack.0.weight"], state["loudness_stack.0.weight"] = p["stacks.0.f0_weight"].T, p["stacks.0.loudness_weight"].T
            state["f0_stack.0.bias"], state["loudness_stack.0.bias"] = p["stacks.0.f0_bias"], p["stacks.0.loudness_bias"]
        else:
            weight, bias = p[f"stacks.{layer}.weight"], p[f"stacks.{layer}.bias"]
            state[f"f0_stack.{lin}.weight"], state[f"loudness_stack.{lin}.weight"] = weight[:u, :u].T, weight[u:, u:].T
            state[f"f0_stack.{lin}.bias"], state[f"loudness_stack.{lin}.bias"] = bias[:u], bias[u:]
        for i, stack in enumerate(("f0_stack", "loudness_stack")):
            state[f"{stack}.{norm}.weight"] = p[f"stacks.{layer}.norm_weight"][i]
            state[f"{stack}.{norm}.bias"] = p[f"stacks.{layer}.norm_bias"][i]
    rows = gate_rows(hidden)
    state["gru.weight_ih_l0"], state["gru.weight_hh_l0"] = p["gru.W"][0][rows], p["gru.R"][0][rows]
    state["gru.bias_ih_l0"], state["gru.bias_hh_l0"] = p["gru.B"][0][: 3 * hidden][rows], p["gru.B"][0][3 * hidden :][rows]
    for name, torch_name, transposed in _one_to_one(layers):
        state[torch_name] = p[name].T if transposed else p[name]
    return {k: torch.tensor(np.ascontiguousarray(v), dtype=torch.float32) for k, v in state.items()}


def streaming_graph(decoder: Decoder, opset: int):
    """The decoder's one-frame step as an `onnx.ModelProto` (no metadata): inputs `f0_hz`,
    `loudness_db` `[voices, 1]` (Hz, dB) and `state` `[voices, hidden]`; outputs as `Decoder.forward`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = decoder.config
    u, h, k = c.units, c.hidden, c.harmonics
    tensors = streaming_tensors(decoder)
    constants = {
        "midi_floor_hz": np.array(MIDI_FLOOR_HZ, np.float32), "ones": np.ones(u, np.float32),
        "zeros": np.zeros(u, np.float32), "side_by_side": np.array([-1, 2, u], np.int64),
        "joined": np.array([-1, 2 * u], np.int64), "axis_0": np.array([0], np.int64), "axis_1": np.array([1], np.int64),
        "exponent": np.array(math.log(10.0), np.float32), "two": np.array(2.0, np.float32),
        "floor": np.array(1e-7, np.float32), "splits": np.array([1, k, c.noise_bands], np.int64),
        "f0_scale": np.array(F0_SCALE, np.float32), "f0_offset": np.array(F0_OFFSET, np.float32),
        "loudness_scale": np.array(LOUDNESS_SCALE, np.float32), "zeros_row": np.zeros((1, u), np.float32),
    }
    node = helper.make_node
    nodes = [node("Clip", ["f0_hz", "midi_floor_hz"], ["f0_clipped"]), node("Log", ["f0_clipped"], ["log_f0"]),
             node("Concat", ["log_f0", "loudness_db"], ["stacks_in"], axis=1)]
    nodes += [node("Mul", ["stacks.0.f0_weight", "f0_scale"], ["fold.f0_weight"]),
              node("Mul", ["stacks.0.loudness_weight", "loudness_scale"], ["fold.loudness_weight"]),
              node("Concat", ["fold.f0_weight", "zeros_row"], ["fold.f0_row"], axis=1),
              node("Concat", ["zeros_row", "fold.loudness_weight"], ["fold.loudness_row"], axis=1),
              node("Concat", ["fold.f0_row", "fold.loudness_row"], ["stacks.0.weight"], axis=0),
              node("Mul", ["stacks.0.f0_weight", "f0_offset"], ["fold.f0_shift"]),
              node("Add", ["stacks.0.f0_bias", "fold.f0_shift"], ["fold.f0_bias"]),
              node("Add", ["stacks.0.loudness_bias", "stacks.0.loudness_weight"], ["fold.loudness_bias"]),
              node("Concat", ["fold.f0_bias", "fold.loudness_bias"], ["stacks.0.bias"], axis=1)]
    x = "stacks_in"
    for layer in range(c.layers):
        s = f"stacks.{layer}"
        nodes += [node("Gemm", [x, f"{s}.weight", f"{s}.bias"], [f"{s}.dense"]),
                  node("Reshape", [f"{s}.dense", "side_by_side"], [f"{s}.pair"]),
                  node("LayerNormalization", [f"{s}.pair", "ones", "zeros"], [f"{s}.normal"], axis=-1, epsilon=LN_EPSILON),
                  node("Mul", [f"{s}.normal", f"{s}.norm_weight"], [f"{s}.scaled"]),
                  node("Add", [f"{s}.scaled", f"{s}.norm_bias"], [f"{s}.shifted"]),
                  node("LeakyRelu", [f"{s}.shifted"], [f"{s}.act"], alpha=LEAK),
                  node("Reshape", [f"{s}.act", "joined"], [f"{s}.out"])]
        x = f"{s}.out"
    stacks = x
    nodes += [node("Unsqueeze", [stacks, "axis_0"], ["gru.x"]), node("Unsqueeze", ["state", "axis_0"], ["gru.h0"]),
              node("GRU", ["gru.x", "gru.W", "gru.R", "gru.B", "", "gru.h0"], ["", "gru.h1"], hidden_size=h,
                   linear_before_reset=1),
              node("Squeeze", ["gru.h1", "axis_0"], ["new_state"]),
              node("Concat", ["new_state", stacks], ["out_stack.in"], axis=1)]
    x = "out_stack.in"
    for layer in range(c.layers):
        s = f"out_stack.{layer}"
        nodes += [node("Gemm", [x, f"{s}.weight", f"{s}.bias"], [f"{s}.dense"]),
                  node("LayerNormalization", [f"{s}.dense", f"{s}.norm_weight", f"{s}.norm_bias"], [f"{s}.normal"],
                       axis=-1, epsilon=LN_EPSILON),
                  node("LeakyRelu", [f"{s}.normal"], [f"{s}.out"], alpha=LEAK)]
        x = f"{s}.out"
    nodes += [node("Gemm", [x, "out.weight", "out.bias"], ["raw"]), node("Sigmoid", ["raw"], ["sigmoid"]),
              node("Pow", ["sigmoid", "exponent"], ["power"]), node("Mul", ["power", "two"], ["doubled"]),
              node("Add", ["doubled", "floor"], ["controls"]),
              node("Split", ["controls", "splits"], ["amplitude", "distribution_2d", "noise_2d"], axis=1),
              node("Unsqueeze", ["distribution_2d", "axis_1"], ["harmonic_distribution"]),
              node("Unsqueeze", ["noise_2d", "axis_1"], ["noise_magnitudes"])]

    def value(name: str, shape: list) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    graph = helper.make_graph(
        nodes, "timbrel_decoder_step",
        [value("f0_hz", ["voices", 1]), value("loudness_db", ["voices", 1]), value("state", ["voices", h])],
        [value("amplitude", ["voices", 1]), value("harmonic_distribution", ["voices", 1, k]),
         value("noise_magnitudes", ["voices", 1, c.noise_bands]), value("new_state", ["voices", h])],
        [numpy_helper.from_array(v, name) for name, v in {**tensors, **constants}.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
