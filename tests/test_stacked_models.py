"""Several models in one onnxruntime call (`timbrel.plugin.stacked_models`), and the ONNX wire
format the player reads and writes for it (`timbrel.plugin.onnx_wire`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from timbrel.engine.realtime.host import Engine
from timbrel.engine.render import render_events
from timbrel.export.model import ModelConfig, TimbreNetwork
from timbrel.export.onnx_export import export_onnx
from timbrel.plugin.chain import Chain
from timbrel.plugin.ensemble import Ensemble, Part
from timbrel.plugin.ensemble_voices import EnsembleVoices
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import load_model
from timbrel.plugin.model_synth import ModelRunner, new_frame
from timbrel.plugin.onnx_wire import Node, read_graph, write_model
from timbrel.plugin.stacked_models import StackedRunner, stack_weights
from timbrel.presets import default_model
from timbrel.presets.build import load_preset

RATE, BLOCK = 48000, 128
FACTORY_MODELS = sorted(Path(default_model()).parent.glob("*.onnx"))
STATS = {"f0_stats": {"mean": 300.0, "std": 40.0, "min": 150.0, "max": 700.0},
         "loudness_stats": {"mean": -30.0, "std": 8.0, "min": -70.0, "max": -8.0}}


def small_export(path: Path, layers: int = 1, hidden: int = 12, seed: int = 0, harmonics: int = 8, bands: int = 9):
    torch.manual_seed(seed)
    config = ModelConfig(harmonics=harmonics, noise_bands=bands, units=16, hidden=hidden, layers=layers,
                         reverb_seconds=0.05)
    return load_model(export_onnx(TimbreNetwork(config), path, name=path.stem, provenance={"steps": 0}, **STATS))


def edited(model, path: Path, edit) -> object:
    """`model`'s file with its graph changed by `edit(proto)`, loaded."""
    proto = onnx.load(str(model.path))
    edit(proto)
    onnx.save(proto, str(path))
    return load_model(path)


def test_every_factory_model_and_fresh_exports_stack_and_other_graphs_do_not(tmp_path):
    assert len(FACTORY_MODELS) == 13
    for path in FACTORY_MODELS:
        assert isinstance(stack_weights(load_model(path)), dict), path.name
    fresh = small_export(tmp_path / "fresh.onnx")
    assert isinstance(stack_weights(fresh), dict)
    assert isinstance(stack_weights(small_export(tmp_path / "deep.onnx", layers=3)), dict)

    def sigmoid_to_tanh(proto):
        next(n for n in proto.graph.node if n.op_type == "Sigmoid").op_type = "Tanh"

    def another_leak(proto):
        next(n for n in proto.graph.node if n.op_type == "LeakyRelu").attribute[0].f = 0.3

    assert stack_weights(edited(fresh, tmp_path / "tanh.onnx", sigmoid_to_tanh)) == \
        "its graph is not the streaming graph timbrel export writes"
    assert stack_weights(edited(fresh, tmp_path / "leak.onnx", another_leak)) == "another leak"


def per_voice_inputs(voices: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    f0 = rng.uniform(60.0, 900.0, voices).astype(np.float32)
    loudness = rng.uniform(-70.0, -5.0, voices).astype(np.float32)
    tilt = np.where(rng.random(voices) < 0.5, 0.0, rng.uniform(-1.0, 1.0, voices)).astype(np.float32)
    gru = rng.normal(0.0, 0.3, (voices, 128)).astype(np.float32)
    return f0, loudness, np.ones(voices, np.float32), tilt, rng.uniform(0.5, 1.5, voices).astype(np.float32), gru


def test_a_stack_computes_what_each_models_own_session_computes():
    models = [load_model(path) for path in FACTORY_MODELS[:5]]
    voices = 24
    f0, loudness, scale, tilt, noise_gain, gru = per_voice_inputs(voices)
    orders = np.zeros((8, voices), dtype=np.int64)
    batches = np.zeros(8, dtype=np.int64)
    shuffled = np.random.default_rng(1).permutation(voices)
    counts = {0: 7, 1: 1, 2: 0, 4: 5, 5: 3}  # runner 5 plays models[3] but is left out of the stack
    at = 0
    for r, count in counts.items():
        orders[r, :count] = shuffled[at:at + count]
        batches[r] = count
        at += count
    stacked_models = [0, 1, 2, 4]
    stack = StackedRunner([models[m] for m in stacked_models], [0, 1, 2, 4], voices)
    frame, stacked_gru = new_frame(voices, 64, 65), gru.copy()
    left = batches.copy()
    stack.run(orders, left, f0, loudness, scale, tilt, noise_gain, stacked_gru, frame)
    assert left.tolist() == [0, 0, 0, 0, 0, 3, 0, 0], "the stack ran its runners' batches and left the others"
    assert stack.runs == 1
    expected, own_gru = new_frame(voices, 64, 65), gru.copy()
    for r, m in zip([0, 1, 2, 4], stacked_models):
        if batches[r]:
            ModelRunner(models[m], voices).run(orders[r], batches[r], f0, loudness, scale, tilt, noise_gain, own_gru,
                                               expected)
    played = np.concatenate([orders[r, :batches[r]] for r in (0, 1, 4)])
    for got, want in zip(frame[1:], expected[1:]):
        np.testing.assert_allclose(got[played], want[played], rtol=1e-5, atol=1e-6)
        assert np.abs(want[played]).max() > 0
    np.testing.assert_allclose(stacked_gru, own_gru, atol=1e-5)
    assert np.array_equal(stacked_gru[orders[5, :3]], gru[orders[5, :3]]), "the runner left out is untouched"


@pytest.mark.parametrize("layers", [1, 2])
def test_fresh_exports_stacked_compute_what_their_own_sessions_compute(tmp_path, layers):
    models = [small_export(tmp_path / f"m{seed}.onnx", layers=layers, seed=seed) for seed in range(3)]
    voices = 6
    f0, loudness, scale, tilt, noise_gain, gru = per_voice_inputs(voices, seed=layers)
    orders = np.arange(voices, dtype=np.int64).reshape(3, 2)
    frame, stacked_gru = new_frame(voices, 8, 9), gru.copy()
    StackedRunner(models, range(3), voices).run(orders, np.array([2, 1, 2]), f0, loudness, scale, tilt, noise_gain,
                                                   stacked_gru, frame)
    expected, own_gru = new_frame(voices, 8, 9), gru.copy()
    for r, count in enumerate((2, 1, 2)):
        ModelRunner(models[r], voices).run(orders[r], count, f0, loudness, scale, tilt, noise_gain, own_gru, expected)
    played = [0, 1, 2, 4, 5]
    for got, want in zip(frame[1:], expected[1:]):
        np.testing.assert_allclose(got[played], want[played], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stacked_gru, own_gru, atol=1e-5)


def test_models_of_different_shapes_do_not_stack(tmp_path):
    wide, narrow = small_export(tmp_path / "wide.onnx", hidden=12), small_export(tmp_path / "narrow.onnx", hidden=10)
    deep = small_export(tmp_path / "deep.onnx", hidden=12, layers=2)
    for pair in ((wide, narrow), (wide, deep)):
        with pytest.raises(ValueError, match="do not stack"):
            StackedRunner(pair, [0, 1], 4)


def test_the_wire_format_round_trips_and_onnxruntime_runs_what_it_writes():
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    nodes = [Node("MatMul", ("x", "weight"), ("product",)), Node("LeakyRelu", ("product",), ("y",), {"alpha": 0.5}),
             Node("Concat", ("y", "y"), ("both",), {"axis": -1})]
    model = write_model(nodes, {"weight": weight, "shape": np.array([-1, 3], np.int64)}, {"x": ("n", 2)},
                        {"both": ("n", 6)})
    graph = read_graph(model)
    assert graph.nodes == nodes
    np.testing.assert_array_equal(graph.initializers["weight"], weight)
    assert graph.initializers["shape"].tolist() == [-1, 3]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = np.array([[1.0, -2.0]], np.float32)
    y = np.where(x @ weight > 0, x @ weight, 0.5 * (x @ weight))
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], np.concatenate([y, y], axis=1))
    for garbage in (b"\x3a\xff\xff", b"\x0f", model[:-7]):
        with pytest.raises(ValueError):
            read_graph(garbage)


def three_parts() -> Ensemble:
    return Ensemble([Part(load_preset(name, voices=4), midi_channel=k + 1)
                     for k, name in enumerate(("violin", "flute", "cello"))])


CHORDS = sorted((t, 0x90 | ch | note << 8 | vel << 16)
                for ch, notes in enumerate(((67, 71), (76, 79, 83), (48,)))
                for t, vel in ((0.0, 100), (0.8, 0)) for note in notes)


def test_an_ensemble_of_three_models_calls_onnxruntime_once_a_frame_and_sounds_as_with_three_sessions(monkeypatch):
    stacked, alone = three_parts(), three_parts()
    outs = [render_events(Engine(RATE, BLOCK), stacked, CHORDS, 1.0, BLOCK)]
    monkeypatch.setattr(EnsembleVoices, "stacking", False)
    outs.append(render_events(Engine(RATE, BLOCK), alone, CHORDS, 1.0, BLOCK))
    assert alone.voices.stacks == ()
    (stack,) = stacked.voices.stacks
    assert stack.runs > 200 and all(runner.runs == 0 for runner in stacked.voices.runners)
    assert all(runner.runs > 200 for runner in alone.voices.runners)
    error = np.sqrt(np.mean((outs[0] - outs[1]) ** 2)) / np.sqrt(np.mean(outs[1] ** 2))
    assert error < 1e-5, error


def test_a_part_switched_to_a_model_the_ensemble_has_not_played_joins_the_stack():
    ensemble = three_parts()
    engine = Engine(RATE, BLOCK)
    engine.load(ensemble)
    (first,) = ensemble.voices.stacks
    assert first.runners.size == 3
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    for _, packed in CHORDS[:6]:
        engine.events.push(packed)
    ensemble.switch_part(1, load_preset("oboe", voices=4), "Oboe")
    for _ in range(100):
        engine.process(None, out)
    (stack,) = ensemble.voices.stacks
    assert stack is not first and stack.runners.size == 4
    assert stack.runs > 50 and all(runner.runs == 0 for runner in ensemble.voices.runners)
    assert np.abs(ensemble.stems[1]).max() > 0.01, "the oboe sounds"


def test_an_ensemble_makes_a_stack_for_each_size_two_of_its_models_share(tmp_path):
    small = [small_export(tmp_path / f"small{seed}.onnx", layers=2, seed=seed, harmonics=64, bands=65)
             for seed in (0, 1)]
    parts = [Part(load_preset(name, voices=4), midi_channel=k + 1) for k, name in enumerate(("violin", "flute"))]
    parts += [Part(Chain(MidiInstrument(model, voices=4)), midi_channel=k + 3) for k, model in enumerate(small)]
    ensemble = Ensemble(parts)
    notes = sorted((0.0, 0x90 | channel | (60 + 5 * channel) << 8 | 100 << 16) for channel in range(4))
    render_events(Engine(RATE, BLOCK), ensemble, notes, 0.5, BLOCK)
    stacks = ensemble.voices.stacks
    assert sorted(sorted(stack.runners.tolist()) for stack in stacks) == [[0, 1], [2, 3]]
    assert all(stack.runs > 100 for stack in stacks) and all(runner.runs == 0 for runner in ensemble.voices.runners)
