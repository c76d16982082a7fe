"""What a cheaper network would buy: onnxruntime's cost per control frame for variants of
the shipped graph, back to back and once per block period (as the live audio thread calls it).

    python -m bench.bench_network [--frames 400] [--model PATH] [--name network]

The live process sleeps between blocks, and on this machine kind a call made after a sleep
costs two to three times what the same call costs back to back (`bench_model` measures it for
the shipped model). This benchmark asks which lever moves that cost, for 1 and 16 voices of
one model and for four models of 8 voices each (an ensemble's control frame):

- `shipped`: the model file's graph, as the engine runs it: a file written by torch's
  exporter, as the factory's were until the one-frame graph (`--model`, and its ensemble's
  flute, cello and trumpet files beside it);
- `one-frame graph`: the same weights as `timbrel.export.streaming_graph` writes them, the
  factory's graph since;
- `one frame, GRU as MatMuls`: the same weights in a graph for a single frame, its GRU
  written as two MatMuls and the gate arithmetic (same output to float rounding);
- `… int8`: that graph through onnxruntime's dynamic int8 quantisation (weights int8,
  activations quantised per call); its output error against `shipped` is reported;
- `64 units`, `96 units`, `64 units, 1 layer`: untrained networks of those sizes, exported
  by `timbrel.export` (cost only: what retraining every instrument smaller would buy);
- `one Add node`: onnxruntime's own fixed cost per call;
- `numba forward`: the shipped network written out as numba loops, float32 (cost only,
  checked against `shipped` to 1e-5).

Inputs are bound once (IO binding, preallocated, as `ModelRunner`); times are wall µs per
call on one thread, medians, interleaved so that every variant sees the same machine.
Needs the training extra (`onnx`). Writes bench/results/NAME.json.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numba import njit

from bench.report import report
from timbrel.export.onnx_import import network_from_model
from timbrel.plugin.model import INPUTS, load_model, session_options
from timbrel.presets import default_model

BLOCK_S = 128 / 48000
ENSEMBLE = ("violin", "flute", "cello", "trumpet")


def one_frame_graph(path: Path):
    """The model file's graph for a single frame, with its GRU node replaced by MatMuls.

    Valid only for `frames == 1`, as the engine calls it: y = (1 - z) n + z h with
    n = tanh(x Wn + bWn + r (h Rn + bRn)) (`linear_before_reset`, as torch exports it)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    nodes = list(graph.node)
    weights = {init.name: init for init in graph.initializer}
    gru = next(n for n in nodes if n.op_type == "GRU")
    w, r, b = (numpy_helper.to_array(weights[name])[0] for name in gru.input[1:4])
    hidden = r.shape[1]
    by_output = {out: n for n in nodes for out in n.output}
    into = lambda name: next(n for n in nodes if name in n.input)
    transpose_in = by_output[gru.input[0]]
    sequence = transpose_in.input[0]
    squeeze_y = into(gru.output[0])
    transpose_out = into(squeeze_y.output[0])
    dropped = {id(n) for n in (transpose_in, gru, squeeze_y, transpose_out, into(gru.output[1]),
                               by_output[gru.input[5]])}
    y = transpose_out.output[0]
    step = [
        helper.make_node("MatMul", [sequence, "gru_w"], ["gx0"]), helper.make_node("Add", ["gx0", "gru_bw"], ["gx"]),
        helper.make_node("Unsqueeze", ["state", "axis_1"], ["h"]),
        helper.make_node("MatMul", ["h", "gru_r"], ["gh0"]), helper.make_node("Add", ["gh0", "gru_br"], ["gh"]),
        helper.make_node("Split", ["gx", "gate_sizes"], ["xz", "xr", "xn"], axis=-1),
        helper.make_node("Split", ["gh", "gate_sizes"], ["hz", "hr", "hn"], axis=-1),
        helper.make_node("Add", ["xz", "hz"], ["z0"]), helper.make_node("Sigmoid", ["z0"], ["z"]),
        helper.make_node("Add", ["xr", "hr"], ["r0"]), helper.make_node("Sigmoid", ["r0"], ["r"]),
        helper.make_node("Mul", ["r", "hn"], ["rhn"]), helper.make_node("Add", ["xn", "rhn"], ["n0"]),
        helper.make_node("Tanh", ["n0"], ["n"]),
        helper.make_node("Sub", ["h", "n"], ["h_n"]), helper.make_node("Mul", ["z", "h_n"], ["z_h_n"]),
        helper.make_node("Add", ["n", "z_h_n"], [y]),
        helper.make_node("Squeeze", [y, "axis_1"], ["new_state"]),
    ]
    kept = []
    for node in nodes:
        if id(node) not in dropped:
            kept.append(node)
            if sequence in node.output:
                kept.extend(step)
    del graph.node[:]
    graph.node.extend(kept)
    for name in gru.input[1:4]:
        graph.initializer.remove(weights[name])
    graph.initializer.extend([
        numpy_helper.from_array(np.ascontiguousarray(w.T), "gru_w"), numpy_helper.from_array(np.ascontiguousarray(r.T), "gru_r"),
        numpy_helper.from_array(b[: 3 * hidden], "gru_bw"), numpy_helper.from_array(b[3 * hidden:], "gru_br"),
        numpy_helper.from_array(np.array([1], np.int64), "axis_1"),
        numpy_helper.from_array(np.array([hidden] * 3, np.int64), "gate_sizes")])
    onnx.checker.check_model(model)
    return model


def variants(model_path: Path, folder: Path) -> dict[str, bytes]:
    """name -> serialized ONNX graph for every variant of one model."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from timbrel.export.onnx_export import convert_to_streaming

    found = {"shipped": model_path.read_bytes()}
    streaming = convert_to_streaming(model_path, folder / f"{model_path.stem}-streaming.onnx")
    found["one-frame graph (streaming_graph, shipped since)"] = streaming.read_bytes()
    lean = folder / f"{model_path.stem}-one-frame.onnx"
    onnx.save(one_frame_graph(model_path), str(lean))
    found["one frame, GRU as MatMuls"] = lean.read_bytes()
    small = folder / f"{model_path.stem}-int8.onnx"
    quantize_dynamic(str(lean), str(small), weight_type=QuantType.QInt8)
    found["one frame, GRU as MatMuls, int8"] = small.read_bytes()
    return found


def smaller_networks(folder: Path) -> dict[str, bytes]:
    """Untrained networks of smaller sizes, exported as `timbrel train` exports."""
    from timbrel.export.model import ModelConfig, TimbreNetwork
    from timbrel.export.onnx_export import export_onnx

    stats = {"mean": 0.0, "std": 1.0, "min": 0.0, "max": 1.0}
    found = {}
    for label, units, layers in (("64 units", 64, 2), ("96 units", 96, 2), ("64 units, 1 layer", 64, 1)):
        path = folder / f"{units}-{layers}.onnx"
        export_onnx(TimbreNetwork(ModelConfig(units=units, hidden=units, layers=layers)), path, name=label,
                    f0_stats=stats, loudness_stats=stats, provenance={"bench": "bench_network"})
        found[label] = path.read_bytes()
    return found


def one_add_graph() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "add",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["voices", 128])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["voices", 128])],
                              [numpy_helper.from_array(np.ones(128, np.float32), "one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


class Bound:
    """One session with an IO binding over preallocated buffers for `voices` voices."""

    def __init__(self, graph: bytes, voices: int):
        self.session = ort.InferenceSession(graph, sess_options=session_options(), providers=["CPUExecutionProvider"])
        self.binding = self.session.io_binding()
        self.buffers = []
        rng = np.random.default_rng(0)
        for meta in self.session.get_inputs():
            array = np.zeros([voices] + [d if isinstance(d, int) else 1 for d in meta.shape[1:]], np.float32)
            if meta.name == INPUTS[0]:
                array[:] = rng.uniform(110.0, 880.0, array.shape)
            elif meta.name == INPUTS[1]:
                array[:] = rng.uniform(-60.0, -10.0, array.shape)
            self.buffers.append(array)
            self.binding.bind_input(meta.name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
        for meta in self.session.get_outputs():
            array = np.zeros([voices] + [d if isinstance(d, int) else 1 for d in meta.shape[1:]], np.float32)
            self.buffers.append(array)
            self.binding.bind_output(meta.name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
        for _ in range(30):
            self.run()

    def run(self) -> None:
        self.session.run_with_iobinding(self.binding)


def controls(graph: bytes, frames: int = 1200, voices: int = 8) -> np.ndarray:
    """Harmonic and noise magnitudes (dB) `[frames, voices, 1 + K + N]` over vibrato and swells, frame by frame."""
    session = ort.InferenceSession(graph, sess_options=session_options(), providers=["CPUExecutionProvider"])
    t = np.arange(frames) / 300.0
    f0 = 110.0 * 2.0 ** (np.arange(voices)[:, None] / 2.0) * 2.0 ** (0.1 * np.sin(2 * np.pi * 5.0 * t))[None]
    ld = -45.0 + 25.0 * np.sin(2 * np.pi * 0.4 * t[None] + np.arange(voices)[:, None])
    state = np.zeros((voices, session.get_inputs()[2].shape[1]), np.float32)
    rows = []
    for i in range(frames):
        amp, dist, noise, state = session.run(None, {INPUTS[0]: f0[:, i:i + 1].astype(np.float32),
                                                     INPUTS[1]: ld[:, i:i + 1].astype(np.float32), INPUTS[2]: state})
        rows.append(np.concatenate([amp[:, :1], amp[:, :1] * dist[:, 0], noise[:, 0]], axis=1))
    return 20.0 * np.log10(np.maximum(np.array(rows), 1e-6))


def error_db(graph: bytes, reference: np.ndarray) -> tuple[float, float]:
    """Median and p99 of |difference| (dB) against `reference`, over amplitudes, and over harmonics
    and noise bands within 60 dB of their frame's loudest."""
    got = controls(graph)
    audible = reference >= reference[..., 1:].max(axis=-1, keepdims=True) - 60.0
    audible[..., 0] = True
    difference = np.abs(got - reference)[audible]
    return float(np.median(difference)), float(np.percentile(difference, 99))


@njit(fastmath=True, nogil=True, cache=True)
def _dense(x, w, b, y):
    for v in range(x.shape[0]):
        for j in range(w.shape[1]):
            y[v, j] = b[j]
        for k in range(x.shape[1]):
            xv = x[v, k]
            for j in range(w.shape[1]):
                y[v, j] += xv * w[k, j]


@njit(fastmath=True, nogil=True, cache=True)
def _norm_leaky(y, g, b):
    n = y.shape[1]
    for v in range(y.shape[0]):
        mean = 0.0
        for j in range(n):
            mean += y[v, j]
        mean /= n
        var = 0.0
        for j in range(n):
            var += (y[v, j] - mean) ** 2
        scale = 1.0 / math.sqrt(var / n + 1e-5)
        for j in range(n):
            t = (y[v, j] - mean) * scale * g[j] + b[j]
            y[v, j] = t if t > 0.0 else 0.2 * t


@njit(fastmath=True, nogil=True, cache=True)
def _numba_forward(f0, ld, state, stacks, dense, norms, gru_w, gru_r, gru_b, out_w, out_b, scratch, cat, gates, new_state, raw):
    voices, hidden = state.shape
    units = dense.shape[2]
    for s in range(2):
        for v in range(voices):
            x = (12.0 * math.log2(max(f0[v], 8.176) / 440.0) + 69.0) / 127.0 if s == 0 else ld[v] / 80.0 + 1.0
            for j in range(units):
                scratch[v, j] = x * stacks[s, 0, j] + stacks[s, 1, j]
        _norm_leaky(scratch[:voices], norms[2 * s, 0], norms[2 * s, 1])
        _dense(scratch[:voices], dense[s], stacks[s, 2], cat[:voices, hidden + s * units: hidden + (s + 1) * units])
        _norm_leaky(cat[:voices, hidden + s * units: hidden + (s + 1) * units], norms[2 * s + 1, 0], norms[2 * s + 1, 1])
    _dense(cat[:voices, hidden:], gru_w, gru_b[0], gates[0, :voices])
    _dense(state, gru_r, gru_b[1], gates[1, :voices])
    for v in range(voices):
        for j in range(hidden):
            z = 1.0 / (1.0 + math.exp(-(gates[0, v, j] + gates[1, v, j])))
            r = 1.0 / (1.0 + math.exp(-(gates[0, v, hidden + j] + gates[1, v, hidden + j])))
            n = math.tanh(gates[0, v, 2 * hidden + j] + r * gates[1, v, 2 * hidden + j])
            new_state[v, j] = (1.0 - z) * n + z * state[v, j]
            cat[v, j] = new_state[v, j]
    _dense(cat[:voices], dense[2], stacks[2, 2], scratch[:voices])
    _norm_leaky(scratch[:voices], norms[4, 0], norms[4, 1])
    _dense(scratch[:voices], dense[3], stacks[3, 2], cat[:voices, :units])
    _norm_leaky(cat[:voices, :units], norms[5, 0], norms[5, 1])
    _dense(cat[:voices, :units], out_w, out_b, raw[:voices])
    for v in range(voices):
        for j in range(raw.shape[1]):
            raw[v, j] = 2.0 * (1.0 / (1.0 + math.exp(-raw[v, j]))) ** 2.302585092994046 + 1e-7


class NumbaForward:
    """The shipped network as numba loops for `voices` voices (float32, one frame); written for
    the two-layer network (the 128-unit factory's) only."""

    def __init__(self, path: Path, voices: int):
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
        w = {init.name: numpy_helper.to_array(init).astype(np.float32) for init in model.graph.initializer}
        matmuls = [n.input[1] for n in model.graph.node if n.op_type == "MatMul"]
        gru = next(n for n in model.graph.node if n.op_type == "GRU")
        first_f0, second_f0, first_ld, second_ld, out_first, out_second, out_last = (w[name] for name in matmuls)
        units = second_f0.shape[0]
        hidden = w[gru.input[2]].shape[2]
        self.stacks = np.zeros((4, 3, units), np.float32)
        for s, (name, first) in enumerate((("f0_stack", first_f0), ("loudness_stack", first_ld))):
            self.stacks[s] = (first[0], w[f"{name}.0.bias"], w[f"{name}.3.bias"])
        self.stacks[2, 2], self.stacks[3, 2] = w["out_stack.0.bias"], w["out_stack.3.bias"]
        layers = (second_f0, second_ld, out_first, out_second)
        self.dense = np.zeros((4, out_first.shape[0], units), np.float32)
        for i, layer in enumerate(layers):
            self.dense[i, : layer.shape[0]] = layer
        self.norms = np.array([[w[f"{stack}.{i}.weight"], w[f"{stack}.{i}.bias"]]
                               for stack in ("f0_stack", "loudness_stack", "out_stack") for i in (1, 4)], np.float32)
        self.gru_w = np.ascontiguousarray(w[gru.input[1]][0].T)
        self.gru_r = np.ascontiguousarray(w[gru.input[2]][0].T)
        self.gru_b = np.ascontiguousarray(w[gru.input[3]][0].reshape(2, 3 * hidden))
        self.out_w, self.out_b = out_last, w["out.bias"]
        rng = np.random.default_rng(0)
        self.f0 = rng.uniform(110.0, 880.0, voices).astype(np.float32)
        self.ld = rng.uniform(-60.0, -10.0, voices).astype(np.float32)
        self.state = np.zeros((voices, hidden), np.float32)
        self.scratch = np.zeros((voices, units), np.float32)
        self.cat = np.zeros((voices, hidden + 2 * units), np.float32)
        self.gates = np.zeros((2, voices, 3 * hidden), np.float32)
        self.new_state = np.zeros((voices, hidden), np.float32)
        self.raw = np.zeros((voices, out_last.shape[1]), np.float32)
        self.run()

    def run(self) -> None:
        _numba_forward(self.f0, self.ld, self.state, self.stacks, self.dense, self.norms, self.gru_w,
                       self.gru_r, self.gru_b, self.out_w, self.out_b, self.scratch, self.cat, self.gates,
                       self.new_state, self.raw)

    def check(self, graph: bytes) -> float:
        """Largest relative difference of the amplitude against onnxruntime on the same inputs."""
        session = ort.InferenceSession(graph, sess_options=session_options(), providers=["CPUExecutionProvider"])
        amp = session.run(None, {INPUTS[0]: self.f0[:, None], INPUTS[1]: self.ld[:, None], INPUTS[2]: self.state})[0]
        self.run()
        return float(np.max(np.abs(self.raw[:, 0] - amp[:, 0]) / amp[:, 0]))


def time_calls(callers: dict[str, list], frames: int, gap_s: float) -> dict[str, np.ndarray]:
    """µs per call of each entry (a list of runs made together: an ensemble's frame), interleaved."""
    times = {name: np.empty(frames) for name in callers}
    for i in range(frames):
        for name, runs in callers.items():
            if gap_s:
                time.sleep(gap_s)
            t0 = time.perf_counter_ns()
            for run in runs:
                run()
            times[name][i] = (time.perf_counter_ns() - t0) / 1e3
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400, help="calls timed per variant and pacing")
    parser.add_argument("--model", default=str(default_model()))
    parser.add_argument("--name", default="network", help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    model = Path(args.model)
    if load_model(model).one_frame:
        raise SystemExit(f"bench_network: {model} is already a one-frame graph; this compares variants of a file "
                         "written by torch's exporter, as the factory's were before (git show "
                         "e4bc17b:presets/factory/models/violin.onnx, with flute, cello and trumpet beside it)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        graphs = variants(model, folder)
        reference = controls(graphs["shipped"])
        errors = {name: error_db(graph, reference) for name, graph in graphs.items() if name != "shipped"}
        graphs |= smaller_networks(folder)
        ensemble = {name: [variants(model.with_name(f"{instrument}.onnx"), folder)[name] for instrument in ENSEMBLE]
                    for name in ("shipped", "one-frame graph (streaming_graph, shipped since)",
                                 "one frame, GRU as MatMuls, int8")}
        two_layers = network_from_model(model).config.layers == 2
        numba_error = NumbaForward(model, 1).check(graphs["shipped"]) if two_layers else None
        for voices in (1, 16):
            callers = {name: [Bound(graph, voices).run] for name, graph in graphs.items()}
            callers["one Add node"] = [Bound(one_add_graph(), voices).run]
            if two_layers:
                callers["numba forward"] = [NumbaForward(model, voices).run]
            for pacing, gap in (("back to back", 0.0), ("once per block period", BLOCK_S)):
                for name, times in time_calls(callers, args.frames, gap).items():
                    rows.append({"variant": name, "voices": voices, "calls": pacing, "median_us": float(np.median(times)),
                                 "p90_us": float(np.percentile(times, 90))})
        callers = {f"4 models x 8 voices, {name}": [Bound(graph, 8).run for graph in found]
                   for name, found in ensemble.items()}
        for pacing, gap in (("back to back", 0.0), ("once per block period", BLOCK_S)):
            for name, times in time_calls(callers, args.frames, gap).items():
                rows.append({"variant": name, "voices": 32, "calls": pacing, "median_us": float(np.median(times)),
                             "p90_us": float(np.percentile(times, 90))})
    for row in rows:
        if row["variant"] in errors:
            row["error_db_median"], row["error_db_p99"] = errors[row["variant"]]
    report(args.name, rows, model=model.name, numba_max_relative_error=numba_error,
           note="wall µs per call, medians; error: |dB| against the shipped graph over 1200 frames of 8 voices "
                "(amplitude, and harmonics and noise bands within 60 dB of their frame's loudest)")


if __name__ == "__main__":
    main()
