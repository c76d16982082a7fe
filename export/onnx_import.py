"""A torch network from an exported model file, to fine-tune from (`timbrel train --from`).

The `.onnx` file holds every weight of the decoder as an initializer and the reverb's
impulse response in its metadata. This reads them back into a `TimbreNetwork` of the same
sizes, from either graph timbrel has written: the one-frame graph
(`timbrel.export.streaming_graph`, whose folding `decoder_state` undoes) or, in older
files, torch's exporter's (initializers named after the MatMul nodes). Dense weights are
transposed back (ONNX takes `[in, out]`), and the GRU's gates are put back in torch's order
(ONNX stores update, reset, candidate; torch reset, update, candidate).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from timbrel.engine.errors import TimbrelError
from timbrel.export.model import ModelConfig, TimbreNetwork
from timbrel.export.streaming_graph import decoder_state, gate_rows
from timbrel.plugin.model import load_model


def network_from_model(path: str | os.PathLike) -> TimbreNetwork:
    """The torch network of a timbrel model file; a file that is not one is a one-line TimbrelError."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    model = load_model(path)
    graph = onnx.load(str(path)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # the exporter shares equal tensors through Identity nodes
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    info = model.info
    try:
        if "stacks.0.f0_weight" in weights:
            layers = sum(1 for key in weights if key.startswith("stacks.") and key.endswith(".norm_weight"))
            units = weights["stacks.0.f0_weight"].shape[1]
            state = decoder_state(weights, units, layers, info.hidden)
        else:
            units, layers, state = _torchscript_state(graph, weights, info.hidden)
        config = ModelConfig(sample_rate=info.sample_rate, frame_rate=info.frame_rate, harmonics=info.harmonics,
                             noise_bands=info.noise_bands, units=units, layers=layers, hidden=info.hidden,
                             reverb_seconds=model.reverb_ir.size / info.sample_rate)
        network = TimbreNetwork(config)
        network.decoder.load_state_dict(state)
    except (KeyError, IndexError, AttributeError, TypeError, ValueError, RuntimeError, StopIteration) as err:
        raise TimbrelError(f"{path}: cannot read its network back for fine-tuning ({type(err).__name__}: "
                           f"{str(err).splitlines()[0][:120]})") from None
    with torch.no_grad():
        network.reverb_ir.copy_(torch.from_numpy(model.reverb_ir.astype(np.float32)))
    return network


def _torchscript_state(graph, weights: dict[str, np.ndarray], hidden: int) -> tuple[int, int, dict[str, torch.Tensor]]:
    """`(units, layers, state_dict)` of a file written by torch's exporter (timbrel before the
    one-frame graph): Dense weights named by their MatMul nodes, the GRU's in ONNX gate order."""
    matmuls = {n.name.rsplit("/", 2)[-2]: weights.get(n.input[1]) for n in graph.node if n.op_type == "MatMul"}
    gru = next(n for n in graph.node if n.op_type == "GRU")
    layers = sum(1 for key in matmuls if key.startswith("f0_stack."))
    units = matmuls["f0_stack.0"].shape[1]
    state = {}
    for layer in range(layers):
        for prefix in ("f0_stack", "loudness_stack", "out_stack"):
            lin, norm = f"{prefix}.{3 * layer}", f"{prefix}.{3 * layer + 1}"
            state[f"{lin}.weight"], state[f"{lin}.bias"] = matmuls[lin].T, weights[f"{lin}.bias"]
            state[f"{norm}.weight"], state[f"{norm}.bias"] = weights[f"{norm}.weight"], weights[f"{norm}.bias"]
    state["out.weight"], state["out.bias"] = matmuls["out"].T, weights["out.bias"]
    w, r, b = (weights[i] for i in gru.input[1:4])
    rows = gate_rows(hidden)
    state["gru.weight_ih_l0"], state["gru.weight_hh_l0"] = w[0][rows], r[0][rows]
    state["gru.bias_ih_l0"], state["gru.bias_hh_l0"] = b[0][: 3 * hidden][rows], b[0][3 * hidden :][rows]
    return units, layers, {k: torch.tensor(np.array(v, dtype=np.float32)) for k, v in state.items()}


def nearest_model(models: list[Path], f0_hz: dict, loudness_db: dict) -> Path:
    """Of `models` (timbrel model files), the one whose training data's pitch and loudness were
    nearest to these statistics (`mean` Hz and dB): distance in octaves plus dB / 12."""
    def distance(path: Path) -> float:
        info = load_model(path).info
        octaves = abs(np.log2(info.f0_hz["mean"] / f0_hz["mean"]))
        return float(octaves + abs(info.loudness_db["mean"] - loudness_db["mean"]) / 12.0)

    return min(models, key=distance)
