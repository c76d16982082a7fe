import json
import warnings

import numpy as np
import pytest
import soundfile
import torch

from timbrel.engine.errors import TimbrelError
from timbrel.export import onnx_export
from timbrel.export import train as train_module
from timbrel.export.dataset import prepare_dataset
from timbrel.export.fluidsynth import generate_dataset
from timbrel.export.model import ModelConfig, TimbreNetwork
from timbrel.export.release import release
from timbrel.export.train import TrainConfig, load_checkpoint, train
from timbrel.plugin import expression
from timbrel.plugin.model import load_model

SMALL = ModelConfig(harmonics=24, noise_bands=33, units=32, hidden=32, layers=1, reverb_seconds=0.1)
QUICK = TrainConfig(steps=50, batch=4, clip_seconds=0.5, learning_rate=3e-3, validate_every=25, checkpoint_every=25)


@pytest.fixture(scope="module")
def flute_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flute")
    generate_dataset("flute", 10, 3, folder, phrase_seconds=5)
    return folder


@pytest.fixture(scope="module")
def trained(flute_folder, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    dataset = prepare_dataset(flute_folder, SMALL.sample_rate, SMALL.hop)
    best = train(flute_folder, workdir, name="flute-smoke", model_config=SMALL, config=QUICK, progress=False, dataset=dataset)
    return workdir, dataset, best


def test_smoke_run_learns_checkpoints_and_plots(trained):
    workdir, _, best = trained
    history = json.loads((workdir / "history.json").read_text())
    losses = history["train_loss"]
    assert len(losses) == 50
    assert np.mean(losses[28:38]) < 0.8 * np.mean(losses[:10])  # within the light stage, one loss throughout
    assert (workdir / "best.pt").is_file() and load_checkpoint(workdir / "last.pt")["step"] == 50
    assert best["history"]["best_validation"] == min(history["validation_loss"])
    assert (workdir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_run_trains_on_the_light_loss_then_on_the_full_loss(trained):
    from timbrel.export.loss import SpectralLoss

    workdir, _, _ = trained
    history = json.loads((workdir / "history.json").read_text())
    assert history["full_loss_from"] == 39  # 75 % of 50 steps on the light loss
    losses = history["train_loss"]
    assert np.mean(losses[38:41]) > 1.3 * np.mean(losses[35:38])  # twice the scales: the curve steps up there
    light, full = SpectralLoss(48000, light=True), SpectralLoss(48000)
    assert light.sizes == full.sizes[::2] == (6144, 1536, 384) and (light.hop_divisor, full.hop_divisor) == (2, 4)
    rng = np.random.default_rng(0)
    a, b = (torch.from_numpy(rng.standard_normal((2, 24000)).astype(np.float32)) for _ in range(2))
    assert float(light(a, a)) == 0.0 < float(light(a, b))


def test_export_after_training_passes_parity_and_carries_provenance(trained, tmp_path):
    _, dataset, best = trained
    figures = release(best, tmp_path / "flute.onnx", dataset)
    assert figures["onnx_vs_torch_real"] < 1e-5 and figures["render_error_db"] < -60
    model = load_model(tmp_path / "flute.onnx")
    provenance = model.info.provenance
    assert provenance["steps"] == best["step"] and provenance["data"]["seconds"] > 9
    assert set(provenance["quality"]) >= {"f0_median_cents", "loudness_l1_db", "spectral_loss"}
    assert 200 < model.info.f0_hz["mean"] < 2000
    assert model.info.style["source"] == "training data" and model.info.style["notes"] >= 5
    assert set(model.info.style["fields"]) == set(expression.STYLE_FIELDS)


def test_an_export_that_fails_its_check_leaves_the_model_already_there(trained, tmp_path, monkeypatch):
    _, dataset, best = trained
    shipped = tmp_path / "flute.onnx"
    before = b"the model the user had"
    shipped.write_bytes(before)
    monkeypatch.setattr(onnx_export, "RENDER_TOLERANCE_DB", -1000.0)
    with pytest.raises(TimbrelError, match=f"^{shipped}: engine render differs from torch"):
        release(best, shipped, dataset)
    assert shipped.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flute.onnx"]


def test_resume_continues_where_it_stopped(trained, flute_folder):
    workdir, dataset, _ = trained
    more = TrainConfig(**{**QUICK.__dict__, "steps": 60})
    train(flute_folder, workdir, name="flute-smoke", model_config=SMALL, config=more, resume=True, progress=False, dataset=dataset)
    history = json.loads((workdir / "history.json").read_text())
    assert history["steps"] == list(range(1, 61))
    assert load_checkpoint(workdir / "last.pt")["step"] == 60


def test_same_seed_same_run(flute_folder, tmp_path):
    dataset = prepare_dataset(flute_folder, SMALL.sample_rate, SMALL.hop)
    short = TrainConfig(**{**QUICK.__dict__, "steps": 4})
    runs = [train(flute_folder, tmp_path / f"r{i}", name="r", model_config=SMALL, config=short, progress=False, dataset=dataset)
            for i in range(2)]
    assert runs[0]["history"]["train_loss"] == runs[1]["history"]["train_loss"]


def test_ctrl_c_saves_before_exiting(flute_folder, tmp_path, monkeypatch):
    dataset = prepare_dataset(flute_folder, SMALL.sample_rate, SMALL.hop)
    real = train_module.sample_batch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "sample_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(flute_folder, tmp_path, name="x", model_config=SMALL, config=QUICK, progress=False, dataset=dataset)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3


def test_unreadable_files_are_skipped_with_one_line_each(flute_folder, tmp_path):
    for wav in flute_folder.glob("*.wav"):
        (tmp_path / wav.name).write_bytes(wav.read_bytes())
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    warnings = []
    dataset = prepare_dataset(tmp_path, SMALL.sample_rate, SMALL.hop, warn=warnings.append)
    assert len(warnings) == 1 and "broken.wav" in warnings[0] and "\n" not in warnings[0]
    assert "broken.wav" in dataset.files and dataset.seconds > 9


def test_too_little_or_silent_audio_is_refused(tmp_path):
    with pytest.raises(TimbrelError, match="no audio files"):
        prepare_dataset(tmp_path, 48000, 160)
    soundfile.write(tmp_path / "quiet.wav", np.zeros(48000 * 8, np.float32), 48000)
    with pytest.raises(TimbrelError, match="only silence"):
        prepare_dataset(tmp_path, 48000, 160)
    t = np.arange(48000 * 2) / 48000
    soundfile.write(tmp_path / "short.flac", 0.3 * np.sin(2 * np.pi * 330 * t).astype(np.float32), 48000)
    with pytest.raises(TimbrelError, match="only 2.0 s of pitched sound"):
        prepare_dataset(tmp_path, 48000, 160)


def test_torchrun_trains_under_distributed_data_parallel(flute_folder, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--nproc-per-node", "2", "-m", "timbrel", "train", str(flute_folder), "--name", "ddp",
               "--steps", "4", "--units", "16", "--hidden", "16", "--layers", "1", "--harmonics", "16",
               "--noise-bands", "17", "--clip-seconds", "0.5", "--batch", "2", "--quiet"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    history = json.loads((tmp_path / "ddp.train" / "history.json").read_text())
    assert history["steps"] == [1, 2, 3, 4]
    assert load_model(tmp_path / "ddp.onnx").info.provenance["steps"] in (3, 4)
    assert result.stdout.count("render_error_db") == 1


def test_resuming_with_a_budget_trains_that_much_longer_as_the_verdict_advises(flute_folder, tmp_path):
    import subprocess
    import sys

    small = ["--units", "16", "--hidden", "16", "--layers", "1", "--harmonics", "16", "--noise-bands", "17",
             "--clip-seconds", "0.5", "--batch", "2"]

    def run(*extra: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "timbrel", "train", str(flute_folder), "--name", "budget", *small, *extra]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)

    first = run("--max-minutes", "0.05")
    assert first.returncode == 0, first.stderr[-2000:]
    advice = first.stdout.strip().splitlines()[-1]
    assert "not usable yet" in advice and "--resume --max-minutes 10`" in advice
    before = json.loads((tmp_path / "budget.train" / "history.json").read_text())
    assert before["seconds"] >= 3.0  # the budget ended it: no step limit came first

    again = run("--resume", "--max-minutes", "0.05")
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"/{round(3.0 + before['seconds'])} s of the time budget" in again.stderr  # 3 s more than it had
    after = json.loads((tmp_path / "budget.train" / "history.json").read_text())
    assert after["seconds"] >= before["seconds"] + 3.0 and len(after["steps"]) > len(before["steps"])


def test_a_missing_or_corrupt_checkpoint_is_one_line(tmp_path):
    with pytest.raises(TimbrelError, match="absent.pt: no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(TimbrelError, match="bad.pt: not a readable checkpoint") as err:
        load_checkpoint(bad)
    assert "\n" not in str(err.value)
    result = __import__("subprocess").run([__import__("sys").executable, "-m", "timbrel", "export", str(bad)],
                                          capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "bad.pt" in result.stderr
    assert bad.read_bytes() == b"not a checkpoint at all"


def test_a_short_run_from_scratch_is_written_but_told_it_is_not_usable(trained, tmp_path):
    from timbrel.presets.library import Library
    from timbrel.session import Session

    _, dataset, best = trained
    figures = release(best, tmp_path / "smoke.onnx", dataset)
    assert figures["usable"] is False and figures["verdict"].startswith("not usable yet: ")
    provenance = load_model(tmp_path / "smoke.onnx").info.provenance
    assert provenance["usable"] is False and provenance["verdict"] == figures["verdict"]
    library = Library(user_dir=tmp_path / "user")
    preset = library.import_model(tmp_path / "smoke.onnx", name="Smoke")
    assert f"{figures['verdict']} (from its training)" in preset.description
    assert preset.quality["loudness_l1_db"] == pytest.approx(provenance["quality"]["loudness_l1_db"])
    session = Session(library=library, voices=2)
    try:
        session.load("Smoke", wait=True)
        session.load("Smoke", wait=True)
        told = [line for line in session.notices if "not usable yet" in line]
        assert len(told) == 1 and "(from its training)" in told[0]
    finally:
        session.close()


def test_the_verdict_names_what_misses_the_bar():
    from timbrel.export.quality import verdict

    assert verdict({"f0_median_cents": 3862.0, "loudness_l1_db": 19.7}) == (
        False, "not usable yet: pitch 3862.0 cents (needs ≤ 10), loudness 19.7 dB (needs ≤ 3)")
    assert verdict({"f0_median_cents": 2.6, "loudness_l1_db": 2.2}) == (True, "usable: pitch 2.6 cents, loudness 2.2 dB")
    assert verdict({"f0_median_cents": 4.0, "loudness_l1_db": 3.5})[1] == "not usable yet: loudness 3.5 dB (needs ≤ 3)"
    assert verdict({"f0_median_cents": float("nan"), "loudness_l1_db": 17.7}) == (
        False, "not usable yet: no pitch in its output (needs ≤ 10 cents), loudness 17.7 dB (needs ≤ 3)")
    assert verdict({}) == (False, "not measured: no held-out audio to check the model against")


def test_a_network_read_back_from_its_model_file_is_the_one_exported(tmp_path):
    import torch

    from timbrel.export.onnx_export import export_onnx
    from timbrel.export.onnx_import import network_from_model

    torch.manual_seed(1)
    network = TimbreNetwork(SMALL)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    stats = dict(mean=300.0, std=40.0, min=150.0, max=700.0)
    export_onnx(network, tmp_path / "small.onnx", name="small", f0_stats=stats, provenance={},
                loudness_stats=dict(mean=-30.0, std=8.0, min=-70.0, max=-8.0))
    again = network_from_model(tmp_path / "small.onnx")
    assert again.config == SMALL
    f0, loudness = 100 + 800 * torch.rand(3, 20), -60 * torch.rand(3, 20)
    with torch.no_grad():
        for a, b in zip(network.controls(f0, loudness), again.controls(f0, loudness)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(network.impulse_response(), again.impulse_response(), rtol=0, atol=0)


def _torchscript_file(network: TimbreNetwork, path):
    """The model file timbrel wrote before the one-frame graph: torch's exporter, `[voices, frames]` axes."""
    import onnx

    from timbrel.export.onnx_export import OPSET, metadata_record, write_model
    from timbrel.plugin.model import INPUTS, OUTPUTS

    c = network.config
    axes = {name: {0: "voices", 1: "frames"} for name in (*INPUTS[:2], *OUTPUTS[:3])}
    axes.update({INPUTS[2]: {0: "voices"}, OUTPUTS[3]: {0: "voices"}})
    example = (torch.full((2, 3), 220.0), torch.full((2, 3), -30.0), torch.zeros(2, c.hidden))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(network.decoder.eval(), example, str(path), input_names=list(INPUTS),
                          output_names=list(OUTPUTS), dynamic_axes=axes, dynamo=False, opset_version=OPSET)
    stats = dict(mean=300.0, std=40.0, min=150.0, max=700.0)
    record = metadata_record(network, "old", stats, dict(mean=-30.0, std=8.0, min=-70.0, max=-8.0), {})
    return write_model(onnx.load(str(path)), path, "old", record, network.impulse_response().detach().numpy())


@pytest.mark.parametrize("layers", [1, 2])
def test_the_one_frame_graph_equals_torch_and_the_older_files_graph_in_fewer_nodes(tmp_path, layers):
    """A file in the older format (torch's exporter) still loads, steps many frames and reads
    back; converted to the one-frame graph it gives the same outputs frame by frame, reads back
    to the same weights exactly, and onnxruntime runs it in fewer nodes."""
    import onnxruntime as ort

    from timbrel.export.onnx_export import convert_to_streaming
    from timbrel.export.onnx_import import network_from_model
    from timbrel.plugin.model import session_options

    torch.manual_seed(layers)
    network = TimbreNetwork(ModelConfig(harmonics=24, noise_bands=33, units=32, hidden=32, layers=layers,
                                        reverb_seconds=0.1))
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    old = _torchscript_file(network, tmp_path / "old.onnx")
    new = convert_to_streaming(old, tmp_path / "new.onnx")
    old_model, new_model = load_model(old), load_model(new)
    assert not old_model.one_frame and new_model.one_frame
    rng = np.random.default_rng(layers)
    inputs = [rng.uniform(40, 2000, (3, 30)), rng.uniform(-80, -5, (3, 30)), rng.normal(0, 0.5, (3, 32))]
    inputs = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
    with torch.no_grad():
        expected = [t.numpy() for t in network.decoder(*(torch.from_numpy(a) for a in inputs))]
    for got in (old_model.step(*inputs), new_model.step(*inputs)):
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=2e-4, atol=2e-6)
    for path in (old, new):
        again = network_from_model(path).decoder.state_dict()
        for name, value in network.decoder.state_dict().items():
            torch.testing.assert_close(again[name], value, rtol=0, atol=0)

    def optimised_nodes(path) -> int:
        import onnx

        options = session_options()
        options.optimized_model_filepath = str(tmp_path / f"optimised-{path.name}")
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        return len(onnx.load(options.optimized_model_filepath).graph.node)

    assert optimised_nodes(new) < 0.75 * optimised_nodes(old)


def test_converting_a_one_frame_file_again_is_refused_and_leaves_it_alone(tmp_path):
    from timbrel.export.onnx_export import convert_to_streaming, export_onnx

    stats = dict(mean=300.0, std=40.0, min=150.0, max=700.0)
    path = export_onnx(TimbreNetwork(SMALL), tmp_path / "small.onnx", name="small", f0_stats=stats, provenance={},
                       loudness_stats=dict(mean=-30.0, std=8.0, min=-70.0, max=-8.0))
    before = path.read_bytes()
    with pytest.raises(TimbrelError, match="already a one-frame graph"):
        convert_to_streaming(path)
    assert path.read_bytes() == before


def test_fine_tuning_another_instruments_model_reaches_the_bar_in_a_short_run(tmp_path):
    from timbrel.export.onnx_import import nearest_model, network_from_model
    from timbrel.presets.folders import factory_models_dir

    folder = tmp_path / "flute"
    generate_dataset("flute", 30, 3, folder, phrase_seconds=10)
    dataset = prepare_dataset(folder, 48000, 160)
    others = [p for p in sorted(factory_models_dir().glob("*.onnx")) if p.stem != "flute"]
    source = nearest_model(others, *dataset.statistics())
    config = TrainConfig(steps=150, batch=4, clip_seconds=0.5, validate_every=50, checkpoint_every=50)
    best = train(folder, tmp_path / "run", name="my-flute", config=config, progress=False, dataset=dataset,
                 start_from=network_from_model(source), start_name=source.stem)
    figures = release(best, tmp_path / "my-flute.onnx", dataset)
    assert figures["usable"] is True, figures["verdict"]
    assert load_model(tmp_path / "my-flute.onnx").info.provenance["fine_tuned_from"] == source.stem != "flute"


def test_the_progress_bar_counts_the_time_budget(flute_folder, tmp_path, capsys):
    config = TrainConfig(steps=100_000, batch=2, clip_seconds=0.25, validate_every=1000, checkpoint_every=1000,
                         max_minutes=0.05)
    train(flute_folder, tmp_path / "run", name="budget", model_config=SMALL, config=config, progress=True)
    shown = capsys.readouterr().err
    assert "of the time budget, step=" in shown and "/3 s" in shown and "100000" not in shown
    assert "light loss=" in shown  # the bar says which loss the figure is, as the curve steps up at the switch
