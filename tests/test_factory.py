"""Every shipped preset loads, validates, and sounds at the right pitch across its stated range."""

from __future__ import annotations

import numpy as np
import pytest

from timbrel.audition import playing_range, render_audition, sung_glide
from timbrel.engine.realtime.events import NOTE_OFF, NOTE_ON
from timbrel.engine.realtime.features import estimate_pitch
from timbrel.engine.realtime.host import Engine
from timbrel.engine.render import render_events
from timbrel.plugin.model import load_model
from timbrel.presets import factory_dir
from timbrel.presets.build import build_chain
from timbrel.presets.library import CATEGORIES, Library
from timbrel.presets.preset import read_preset

SR, BLOCK, HOP = 48000, 128, 160
FACTORY = sorted(factory_dir().glob("*.toml"))
MAX_MODEL_BYTES = 2 * 1024 * 1024


def test_the_factory_library_covers_the_families_with_its_own_models():
    presets = [read_preset(path, factory=True) for path in FACTORY]
    models = {p.model_file for p in presets}
    assert len(models) >= 3 and len(presets) >= len(models)
    assert {p.category for p in presets} <= set(CATEGORIES)
    library_names = {p.name for p in Library().list() if p.factory}
    assert library_names == {p.name for p in presets}


@pytest.mark.parametrize("path", FACTORY, ids=[p.stem for p in FACTORY])
def test_a_factory_preset_is_complete_and_its_model_small(path):
    preset = read_preset(path, factory=True)
    assert preset.description and preset.tags and preset.author and preset.licence
    assert preset.recipe.get("command") and "data_seed" in preset.recipe
    assert {"spectral_loss", "f0_median_cents", "loudness_l1_db"} <= set(preset.quality)
    assert preset.model_path.stat().st_size <= MAX_MODEL_BYTES


def median_pitch_error_cents(audio: np.ndarray, expected_hz: float) -> float:
    f0, confidence = estimate_pitch(audio.astype(np.float32), SR, HOP)
    voiced = f0[confidence > 0]
    assert voiced.size > 20, "no pitched sound"
    return float(np.median(np.abs(1200 * np.log2(voiced / expected_hz))))


@pytest.mark.parametrize("path", FACTORY, ids=[p.stem for p in FACTORY])
def test_a_factory_preset_plays_in_tune_at_both_ends_of_its_range(path):
    preset = read_preset(path, factory=True)
    model = load_model(preset.model_path)
    low, high = playing_range(model.info.f0_hz)
    if preset.mode == "transfer":
        out = render_audition(preset, SR, BLOCK)[:, 0]
        assert np.sqrt(np.mean(out**2)) > 1e-3
        return
    for note in (low, high):
        events = [(0.0, NOTE_ON | note << 8 | 100 << 16), (0.8, NOTE_OFF | note << 8)]
        chain = build_chain(preset, "midi", voices=4, model=model)
        out = render_events(Engine(SR, BLOCK), chain, events, 1.0, BLOCK)[:, 0]
        assert np.sqrt(np.mean(out[int(0.25 * SR) : int(0.75 * SR)] ** 2)) > 1e-3, f"{preset.name} is silent at {note}"
        # Pitch is the instrument's job; a chorus or an echo can fool a pitch tracker.
        dry = build_chain(preset, "midi", voices=4, model=model).instrument
        held = render_events(Engine(SR, BLOCK), dry, events, 1.0, BLOCK)[int(0.25 * SR) : int(0.75 * SR), 0]
        assert median_pitch_error_cents(held, 440 * 2 ** ((note - 69) / 12)) < 30, (preset.name, note)


def test_the_transfer_audition_follows_the_sung_pitch():
    presets = [read_preset(p, factory=True) for p in FACTORY]
    transfer = [p for p in presets if p.mode == "transfer"]
    assert transfer, "the factory library has a microphone preset"
    preset = transfer[0]
    low, high = playing_range(load_model(preset.model_path).info.f0_hz)
    voice = sung_glide(low, low, SR, seconds=2.0)
    chain = build_chain(preset, "transfer", model=load_model(preset.model_path))
    chain.set_parameter("quantize", 0.0)
    chain.set_parameter("octave", 0.0)
    engine = Engine(SR, BLOCK)
    engine.load(chain)
    out = np.zeros((voice.size, 2), dtype=np.float32)
    for start in range(0, voice.size, BLOCK):
        engine.process(voice[start : start + BLOCK], out[start : start + BLOCK])
    held = out[int(0.5 * SR) : int(1.5 * SR), 0]
    assert median_pitch_error_cents(held, 440 * 2 ** ((low - 69) / 12)) < 50


MODELS = sorted({read_preset(p, factory=True).model_path for p in FACTORY})
MAX_F0_CENTS, MAX_LOUDNESS_L1_DB = 10.0, 3.0


@pytest.mark.parametrize("model_path", MODELS, ids=[p.stem for p in MODELS])
def test_a_factory_model_reproduces_its_recorded_quality_and_meets_the_bar(model_path, tmp_path):
    """Re-render the held-out phrases named in the recipe, resynthesise them through the live
    path, and compare with the figures every preset of this model states."""
    from timbrel.export.fluidsynth import generate_dataset
    from timbrel.export.quality import heldout_quality

    presets = [read_preset(p, factory=True) for p in FACTORY]
    stated = [p for p in presets if p.model_path == model_path]
    recipe = stated[0].recipe
    generate_dataset(model_path.stem, recipe["heldout_seconds"], recipe["heldout_seed"], tmp_path)
    _, measured = heldout_quality(model_path, tmp_path)
    for preset in stated:
        for key in ("f0_median_cents", "loudness_l1_db", "spectral_loss"):
            assert measured[key] == pytest.approx(preset.quality[key], rel=1e-3, abs=1e-3), (preset.name, key)
    assert measured["f0_median_cents"] <= MAX_F0_CENTS
    assert measured["loudness_l1_db"] <= MAX_LOUDNESS_L1_DB


def test_the_factory_build_releases_into_the_shipped_models_folder():
    from timbrel.export.factory import MODELS_DIR

    assert MODELS_DIR == factory_dir() / "models"
    assert len(list(MODELS_DIR.glob("*.onnx"))) == 13
