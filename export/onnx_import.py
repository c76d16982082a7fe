"""A torch network from an exported model file, to fine-tune from (`timbrel train --from`).

The `.onnx` file holds every weight of the decoder as an initializer, under the names the
exporter gave them, and the reverb's impulse response in its metadata. This reads them back
into a `TimbreNetwork` of the same sizes: Dense weights are transposed back (ONNX's MatMul
takes `[in, out]`), and the GRU's gates are put back in torch's order (ONNX stores update,
reset, candidate; torch reset, update, candidate).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from timbrel.engine.errors import TimbrelError
from timbrel.export.model import ModelConfig, TimbreNetwork
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
    matmuls = {n.name.rsplit("/", 2)[-2]: weights.get(n.input[1]) for n in graph.node if n.op_type == "MatMul"}
    gru = next((n for n in graph.node if n.op_type == "GRU"), None)
    try:
        layers = sum(1 for key in matmuls if key.startswith("f0_stack."))
        units = matmuls["f0_stack.0"].shape[1]
        info = model.info
        config = ModelConfig(sample_rate=info.sample_rate, frame_rate=info.frame_rate, harmonics=info.harmonics,
                             noise_bands=info.noise_bands, units=units, layers=layers, hidden=info.hidden,
                             reverb_seconds=model.reverb_ir.size / info.sample_rate)
        network = TimbreNetwork(config)
        state = {}
        for name in network.decoder.state_dict():
            if name.startswith("gru."):
                continue
            layer, kind = name.rsplit(".", 1)
            state[name] = matmuls[layer].T if kind == "weight" and layer in matmuls else weights[name]
        w, r, b = (weights[i] for i in gru.input[1:4])
        hidden = info.hidden
        order = np.r_[hidden : 2 * hidden, 0:hidden, 2 * hidden : 3 * hidden]  # (z, r, n) -> (r, z, n)
        state["gru.weight_ih_l0"], state["gru.weight_hh_l0"] = w[0][order], r[0][order]
        state["gru.bias_ih_l0"], state["gru.bias_hh_l0"] = b[0][: 3 * hidden][order], b[0][3 * hidden :][order]
        network.decoder.load_state_dict({k: torch.tensor(np.array(v, dtype=np.float32)) for k, v in state.items()})
    except (KeyError, IndexError, AttributeError, TypeError, ValueError, RuntimeError) as err:
        raise TimbrelError(f"{path}: cannot read its network back for fine-tuning ({type(err).__name__}: "
                           f"{str(err).splitlines()[0][:120]})") from None
    with torch.no_grad():
        network.reverb_ir.copy_(torch.from_numpy(model.reverb_ir.astype(np.float32)))
    return network


def nearest_model(models: list[Path], f0_hz: dict, loudness_db: dict) -> Path:
    """Of `models` (timbrel model files), the one whose training data's pitch and loudness were
    nearest to these statistics (`mean` Hz and dB): distance in octaves plus dB / 12."""
    def distance(path: Path) -> float:
        info = load_model(path).info
        octaves = abs(np.log2(info.f0_hz["mean"] / f0_hz["mean"]))
        return float(octaves + abs(info.loudness_db["mean"] - loudness_db["mean"]) / 12.0)

    return min(models, key=distance)
