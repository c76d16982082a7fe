import json

import numpy as np
import pytest
import soundfile

from timbrel.engine.errors import TimbrelError
from timbrel.export import onnx_export
from timbrel.export import train as train_module
from timbrel.export.dataset import prepare_dataset
from timbrel.export.fluidsynth import generate_dataset
from timbrel.export.model import ModelConfig
from timbrel.export.release import release
from timbrel.export.train import TrainConfig, load_checkpoint, train
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
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    assert (workdir / "best.pt").is_file() and load_checkpoint(workdir / "last.pt")["step"] == 50
    assert best["history"]["best_validation"] == min(history["validation_loss"])
    assert (workdir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_after_training_passes_parity_and_carries_provenance(trained, tmp_path):
    _, dataset, best = trained
    figures = release(best, tmp_path / "flute.onnx", dataset)
    assert figures["onnx_vs_torch_real"] < 1e-5 and figures["render_error_db"] < -60
    model = load_model(tmp_path / "flute.onnx")
    provenance = model.info.provenance
    assert provenance["steps"] == best["step"] and provenance["data"]["seconds"] > 9
    assert set(provenance["quality"]) >= {"f0_median_cents", "loudness_l1_db", "spectral_loss"}
    assert 200 < model.info.f0_hz["mean"] < 2000


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
