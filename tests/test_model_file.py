import base64
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from timbrel.engine.errors import TimbrelError
from timbrel.export.model import ModelConfig, TimbreNetwork
from timbrel.export.onnx_export import PARITY_TOLERANCE, check_export, export_onnx
from timbrel.plugin.model import IR_KEY, METADATA_KEY, load_model

SMALL = ModelConfig(harmonics=8, noise_bands=9, units=16, hidden=12, layers=1, reverb_seconds=0.05)
STATS = dict(f0_stats=dict(mean=300.0, std=40.0, min=150.0, max=700.0),
             loudness_stats=dict(mean=-30.0, std=8.0, min=-70.0, max=-8.0))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = TimbreNetwork(SMALL)
    path = export_onnx(model, tmp_path_factory.mktemp("m") / "small.onnx", name="small", provenance={"steps": 0}, **STATS)
    return model, path


def rewrite(src, dst, edit):
    proto = onnx.load(str(src))
    edit(proto)
    onnx.save(proto, str(dst))
    return dst


def set_meta(proto, key, value):
    for entry in proto.metadata_props:
        if entry.key == key:
            entry.value = value


def test_exported_model_loads_with_its_metadata_and_dynamic_axes(exported):
    _, path = exported
    model = load_model(path)
    assert model.info.name == "small" and model.info.harmonics == 8 and model.info.hidden == 12
    assert model.info.model_hop_samples == 160 and model.info.hop_at(44100) == 147
    assert model.info.f0_hz["max"] == 700.0
    assert model.reverb_ir.size == int(0.05 * 48000) and model.reverb_ir[0] == 1.0
    for voices, frames in ((1, 1), (16, 1), (3, 7)):
        amp, dist, noise, state = model.step(np.full((voices, frames), 220, np.float32),
                                             np.full((voices, frames), -20, np.float32), np.zeros((voices, 12), np.float32))
        assert amp.shape == (voices, frames) and dist.shape == (voices, frames, 8)
        assert noise.shape == (voices, frames, 9) and state.shape == (voices, 12)
        assert np.all(amp > 0) and np.all(noise > 0)


def test_every_export_in_a_process_keeps_voices_and_frames_dynamic(exported, tmp_path):
    bigger = ModelConfig(harmonics=16, noise_bands=17, units=24, hidden=20, layers=1, reverb_seconds=0.05)
    path = export_onnx(TimbreNetwork(bigger), tmp_path / "second.onnx", name="second", provenance={}, **STATS)
    model = load_model(path)
    amp, *_ = model.step(np.full((5, 9), 300, np.float32), np.full((5, 9), -30, np.float32), np.zeros((5, 20), np.float32))
    assert amp.shape == (5, 9)


def test_session_is_set_up_for_per_frame_calls(exported):
    options = load_model(exported[1]).session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_export_checks_pass_and_catch_a_tampered_graph(exported, tmp_path):
    model, path = exported
    f0 = np.geomspace(150, 700, 200).astype(np.float32)
    ld = np.linspace(-60, -10, 200).astype(np.float32)
    figures = check_export(model, path, f0, ld)
    assert figures["onnx_vs_torch_random"] < 1e-5 and figures["onnx_vs_torch_real"] < 1e-5
    assert figures["render_error_db"] < -60

    def scale_a_weight(proto):
        init = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
        values = onnx.numpy_helper.to_array(init) * 1.5
        init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))

    tampered = rewrite(path, tmp_path / "tampered.onnx", scale_a_weight)
    with pytest.raises(TimbrelError, match="tampered.onnx: ONNX differs from torch"):
        check_export(model, tampered, f0, ld)


def test_rounding_amplified_by_the_recurrence_passes_and_a_weight_off_by_a_thousandth_fails(tmp_path):
    torch.manual_seed(0)
    model = TimbreNetwork(SMALL)
    with torch.no_grad():
        model.decoder.gru.weight_hh_l0.mul_(12.0)
    path = export_onnx(model, tmp_path / "touchy.onnx", name="touchy", provenance={"steps": 0}, **STATS)
    f0 = np.geomspace(150, 700, 200).astype(np.float32)
    ld = np.linspace(-60, -10, 200).astype(np.float32)
    figures = check_export(model, path, f0, ld)
    assert figures["onnx_vs_torch_random_run"] > 10 * PARITY_TOLERANCE
    assert figures["onnx_vs_torch_random"] < PARITY_TOLERANCE and figures["render_error_db"] < -60

    def nudge_the_recurrent_weights(proto):
        recurrent = next(node.input[2] for node in proto.graph.node if node.op_type == "GRU")
        init = next(t for t in proto.graph.initializer if t.name == recurrent)
        init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * 1.001, init.name))

    nudged = rewrite(path, tmp_path / "nudged.onnx", nudge_the_recurrent_weights)
    with pytest.raises(TimbrelError, match="nudged.onnx: ONNX differs from torch by .* per step"):
        check_export(model, nudged, f0, ld)


def one_line(err: pytest.ExceptionInfo, filename: str) -> str:
    message = str(err.value)
    assert "\n" not in message and filename in message
    return message


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(TimbrelError, match="no such model file") as err:
        load_model(tmp_path / "absent.onnx")
    one_line(err, "absent.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 definitely not protobuf" * 10)
    with pytest.raises(TimbrelError, match="not a loadable ONNX model") as err:
        load_model(garbage)
    one_line(err, "garbage.onnx")


@pytest.mark.parametrize(
    "edit, fault",
    [
        (lambda p: p.metadata_props.__delitem__(slice(None)), "not a timbrel model"),
        (lambda p: set_meta(p, METADATA_KEY, "{not json"), "not valid JSON"),
        (lambda p: set_meta(p, METADATA_KEY, json.dumps({"format_version": 99})), "format 99 is not supported"),
        (lambda p: set_meta(p, IR_KEY, "@@@"), "corrupt reverb impulse response"),
        (lambda p: set_meta(p, IR_KEY, base64.b64encode(np.array([np.nan], "<f4").tobytes()).decode()), "not finite"),
    ],
)
def test_bad_metadata_is_one_line(exported, tmp_path, edit, fault):
    bad = rewrite(exported[1], tmp_path / "bad.onnx", edit)
    with pytest.raises(TimbrelError, match=fault) as err:
        load_model(bad)
    one_line(err, "bad.onnx")


def test_metadata_that_contradicts_the_graph_is_refused(exported, tmp_path):
    def lie_about_hidden(proto):
        record = json.loads(next(e.value for e in proto.metadata_props if e.key == METADATA_KEY))
        record["hidden"] = 64
        set_meta(proto, METADATA_KEY, json.dumps(record))

    bad = rewrite(exported[1], tmp_path / "liar.onnx", lie_about_hidden)
    with pytest.raises(TimbrelError, match="metadata says 64") as err:
        load_model(bad)
    one_line(err, "liar.onnx")


def test_a_wrong_shaped_onnx_is_refused(exported, tmp_path):
    meta = {e.key: e.value for e in onnx.load(str(exported[1])).metadata_props}
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "other", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path / "relu.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(TimbrelError, match="has no input 'f0_hz'") as err:
        load_model(path)
    one_line(err, "relu.onnx")


def test_a_graph_fixed_to_a_number_of_voices_is_refused_in_one_line(exported, tmp_path):
    def fix_voices(proto):
        for value in proto.graph.input:
            if value.name in ("f0_hz", "loudness_db"):
                value.type.tensor_type.shape.dim[0].dim_value = 4

    bad = rewrite(exported[1], tmp_path / "four.onnx", fix_voices)
    before = bad.read_bytes()
    with pytest.raises(TimbrelError, match="any number of voices") as err:
        load_model(bad)
    one_line(err, "four.onnx")
    assert bad.read_bytes() == before
