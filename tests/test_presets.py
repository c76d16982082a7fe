"""Preset files and the preset library: round trips, playing, faults, search, safe writes."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from timbrel.engine.errors import TimbrelError
from timbrel.engine.realtime.events import NOTE_ON
from timbrel.plugin.effects import create_effect
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import load_model
from timbrel.plugin.transfer import TimbreTransfer
from timbrel.presets import default_model
from timbrel.presets import model_files as preset_module
from timbrel.presets.build import build_chain
from timbrel.presets.library import Library
from timbrel.presets.model_files import sha256_file
from timbrel.presets.names import slug
from timbrel.presets.preset import EffectSettings, Preset, parse_preset, read_preset
from timbrel.presets.settings import apply_settings, effect_keys
from timbrel.presets.writing import preset_to_toml

SR = 48000


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the shipped violin model."""
    path = tmp_path_factory.mktemp("model") / "violin.onnx"
    shutil.copyfile(default_model(), path)
    return path


@pytest.fixture(scope="module")
def sha(model_copy: Path) -> str:
    return sha256_file(model_copy)


@pytest.fixture(scope="module")
def loaded(model_copy: Path):
    return load_model(model_copy)


@pytest.fixture
def factory(tmp_path: Path, model_copy: Path) -> Path:
    """An empty factory folder with the violin model in `models/`."""
    folder = tmp_path / "factory"
    (folder / "models").mkdir(parents=True)
    shutil.copyfile(model_copy, folder / "models" / "violin.onnx")
    return folder


@pytest.fixture
def library(factory: Path, tmp_path: Path) -> Library:
    return Library(factory_dir=factory, user_dir=tmp_path / "user")


def full_preset(sha: str, name: str = "Violin") -> Preset:
    """A preset using every part of the format."""
    return Preset(
        name=name, model_file="violin.onnx", model_sha256=sha, category="strings", tags=["bowed", "solo"],
        description="Solo violin, bright", author="timbrel", licence="MIT", mode="midi",
        midi={"gain_db": -3.5, "voice_mode": 2.0, "glide_s": 0.1, "attack_s": 0.02},
        transfer={"gate_db": -50.0, "scale": 1.0, "pitch_shift_st": 12.0},
        effects=[EffectSettings("eq", {"peak1_db": 2.0, "low_cut": 1.0}),
                 EffectSettings("gain", {"gain_db": -60.0}, bypass=True),
                 EffectSettings("reverb", {"mix": 0.2})],
        recipe={"command": "python -m timbrel.export.factory build", "seed": 1, "data": {"minutes": 4.0}},
        quality={"spectral_loss": 1.25, "f0_error_cents": 14.5, "steps": 40000},
    )


def write_factory(factory: Path, preset: Preset) -> Path:
    path = factory / f"{preset.slug}.toml"
    path.write_text(preset_to_toml(preset), encoding="utf-8")
    return path


def one_line(err: pytest.ExceptionInfo) -> str:
    """The error's message, after checking it is a TimbrelError of one line with no chained traceback."""
    assert err.type is TimbrelError
    message = str(err.value)
    assert message and "\n" not in message and "\r" not in message
    assert err.value.__cause__ is None
    assert err.value.__context__ is None or err.value.__suppress_context__
    return message


def note_on(note: int, velocity: int = 100) -> int:
    return NOTE_ON | note << 8 | velocity << 16


# Round trip and playing ------------------------------------------------------------------------


def test_write_then_read_gives_the_same_preset(tmp_path: Path, model_copy: Path, sha: str):
    preset = full_preset(sha)
    path = tmp_path / "violin.toml"
    path.write_text(preset_to_toml(preset), encoding="utf-8")

    back = read_preset(path, model_dirs=[model_copy.parent])

    assert back == preset
    assert back.path == path and back.model_path == model_copy and not back.factory
    assert preset_to_toml(back) == path.read_text(encoding="utf-8")
    assert 'voice_mode = "legato"' in path.read_text() and 'scale = "major"' in path.read_text()
    assert parse_preset(preset_to_toml(back)) == preset


def test_minimal_file_takes_defaults(tmp_path: Path, model_copy: Path, sha: str):
    path = tmp_path / "plain.toml"
    path.write_text(f'format = 1\n[preset]\nname = "Plain"\n[model]\nfile = "violin.onnx"\nsha256 = "{sha}"\n')
    preset = read_preset(path, model_dirs=[model_copy.parent])
    assert (preset.category, preset.mode, preset.midi, preset.effects, preset.tags) == ("user", "midi", {}, [], [])


def test_a_preset_written_with_an_earlier_parameter_id_still_loads(tmp_path: Path, model_copy: Path, sha: str,
                                                                   loaded):
    """The MIDI instrument's loudness offset was `loudness_db`; it is `loudness_shift_db`, as on transfer."""
    path = tmp_path / "older.toml"
    path.write_text(f'format = 1\n[preset]\nname = "Older"\n[model]\nfile = "violin.onnx"\nsha256 = "{sha}"\n'
                    '[instrument.midi]\nloudness_db = -4.0\n')
    preset = read_preset(path, model_dirs=[model_copy.parent])
    assert preset.midi == {"loudness_shift_db": -4.0}
    assert "loudness_shift_db = -4.0" in preset_to_toml(preset) and "loudness_db =" not in preset_to_toml(preset)
    assert build_chain(preset, model=loaded).instrument.params.get("loudness_shift_db") == -4.0
    assert apply_settings(preset, {"loudness_db": "-2"}).midi == {"loudness_shift_db": -2.0}


def test_the_learned_reverb_names_the_model_it_needs():
    with pytest.raises(TimbrelError, match=r"^the learned reverb plays a model's room: give it one"):
        create_effect("reverb")


def test_switches_read_by_name_or_index(tmp_path: Path, model_copy: Path, sha: str):
    text = preset_to_toml(full_preset(sha)).replace('voice_mode = "legato"', "voice_mode = 1")
    path = tmp_path / "index.toml"
    path.write_text(text)
    assert read_preset(path, model_dirs=[model_copy.parent]).midi["voice_mode"] == 1.0


def test_build_chain_sets_values_orders_effects_applies_bypass_and_plays(tmp_path, model_copy, sha, loaded):
    preset = full_preset(sha)
    path = tmp_path / "violin.toml"
    path.write_text(preset_to_toml(preset))
    preset = read_preset(path, model_dirs=[model_copy.parent])

    chain = build_chain(preset, voices=4)

    assert isinstance(chain.instrument, MidiInstrument) and chain.instrument.voices == 4
    bank = chain.instrument.params
    for key, value in preset.midi.items():
        assert bank.get(key) == pytest.approx(value)
        assert bank.values[bank.index(key)] == pytest.approx(value)
    assert [e.name for e in chain.effects] == ["eq", "gain", "reverb"]
    assert [s.bypassed for s in chain.slots] == [False, True, False]
    for effect, settings in zip(chain.effects, preset.effects):
        for key, value in settings.parameters.items():
            assert effect.params.get(key) == pytest.approx(value)

    seconds = 0.6
    audio = chain(np.zeros(int(seconds * SR), np.float32), SR, block=256, events=np.array([note_on(69)], np.int32))
    assert audio.shape == (2, int(seconds * SR)) and np.all(np.isfinite(audio))
    sounding = float(np.sqrt(np.mean(audio[:, SR // 4:] ** 2)))
    assert sounding > 1e-3, "the preset made no sound"

    muted = apply_settings(preset, {"effects.gain.bypass": "false"})
    quiet = build_chain(muted, voices=4, model=loaded)
    audio = quiet(np.zeros(int(seconds * SR), np.float32), SR, block=256, events=np.array([note_on(69)], np.int32))
    assert float(np.sqrt(np.mean(audio[:, SR // 4:] ** 2))) < sounding / 100, "the bypassed -60 dB gain was applied"


def test_build_chain_in_transfer_mode(model_copy: Path, sha: str, loaded):
    preset = full_preset(sha)
    preset.model_path = model_copy
    chain = build_chain(preset, mode="transfer", model=loaded)
    assert isinstance(chain.instrument, TimbreTransfer)
    for key, value in preset.transfer.items():
        assert chain.instrument.params.get(key) == pytest.approx(value)
    with pytest.raises(TimbrelError) as err:
        build_chain(preset, mode="guitar", model=loaded)
    assert "guitar" in one_line(err)


def test_slug():
    assert slug("Violin") == "violin"
    assert slug("Alto Sax") == "alto-sax"
    assert slug("  French_Horn (warm)! ") == "french-horn-warm"
    assert slug("Violon à cordes") == "violon-a-cordes"


# Faults ------------------------------------------------------------------------------------------

GOOD = """format = 1

[preset]
name = "Violin"
category = "strings"
tags = ["bowed", "solo"]
description = "A violin"

[model]
file = "violin.onnx"
sha256 = "{sha}"

[instrument]
mode = "midi"

[instrument.midi]
gain_db = -3.0
voice_mode = "legato"

[instrument.transfer]
gate_db = -55.0

[[effects]]
type = "eq"
bypass = false

[effects.parameters]
peak1_db = 2.0
"""

CORRUPTIONS = [
    ("toml-syntax", lambda t: t.replace('name = "Violin"', 'name = "Violin'), ["invalid TOML", "line 4"]),
    ("missing-name", lambda t: t.replace('name = "Violin"\n', ""), ["missing 'name'"]),
    ("bad-category", lambda t: t.replace('"strings"', '"strngs"'), ["'strngs'", "woodwind", "did you mean 'strings'"]),
    ("unknown-parameter", lambda t: t.replace("gain_db = -3.0", "gian_db = -3.0"),
     ["no parameter 'gian_db'", "did you mean 'gain_db'", "voice_mode"]),
    ("out-of-range", lambda t: t.replace("gain_db = -3.0", "gain_db = 40.0"),
     ["gain_db = 40", "out of range (-60 to 12 dB)"]),
    ("bad-switch", lambda t: t.replace('"legato"', '"chord"'), ["voice_mode", "poly, mono, legato"]),
    ("unknown-effect", lambda t: t.replace('type = "eq"', 'type = "flanger"'), ["no effect 'flanger'", "reverb"]),
    ("unknown-effect-parameter", lambda t: t.replace("peak1_db = 2.0", "peak9_db = 2.0"),
     ["eq", "no parameter 'peak9_db'"]),
    ("missing-model", lambda t: t.replace('"violin.onnx"', '"cello.onnx"'), ["'cello.onnx' not found"]),
    ("model-path", lambda t: t.replace('"violin.onnx"', '"../violin.onnx"'), ["file name", "not a path"]),
    ("sha-mismatch", lambda t: t.replace(t.split('sha256 = "')[1][:64], "0" * 64), ["sha256", "expects 000000000000"]),
    ("bad-sha", lambda t: t.replace(t.split('sha256 = "')[1][:64], "xyz"), ["64 hex digits"]),
    ("tags-not-list", lambda t: t.replace('["bowed", "solo"]', '"bowed"'), ["tags must be a list of strings"]),
    ("value-not-number", lambda t: t.replace("gain_db = -3.0", 'gain_db = "loud"'), ["gain_db = 'loud'", "a number"]),
    ("nan-value", lambda t: t.replace("gain_db = -3.0", "gain_db = nan"), ["gain_db = nan is not a finite number"]),
    ("bypass-not-bool", lambda t: t.replace("bypass = false", 'bypass = "no"'), ["bypass must be true or false"]),
    ("preset-not-table", lambda t: "format = 1\npreset = 3\n[model]" + t.split("[model]")[1],
     ["[preset] must be a table, not an integer (3)"]),
    ("unknown-top-key", lambda t: t.replace("format = 1\n", "format = 1\ncolour = 1\n"), ["unknown key 'colour'"]),
    ("newer-format", lambda t: t.replace("format = 1", "format = 2"), ["format 2", "newer"]),
    ("missing-format", lambda t: t.replace("format = 1\n", ""), ["format = 1"]),
    ("not-a-preset", lambda t: '[project]\nname = "timbrel"\n', ["missing 'format = 1'"]),
    ("missing-model-table", lambda t: t.split("[model]")[0], ["missing the [model] table"]),
    ("binary", lambda t: bytes(range(256)) * 8, ["binary"]),
    ("not-utf8", lambda t: b"format = 1\n\xff\xfe\xfd name", ["not UTF-8"]),
    ("empty", lambda t: b"", ["empty file"]),
    ("blank", lambda t: "\n  \n", ["empty file"]),
    ("quality-not-number", lambda t: t + '\n[quality]\nloudness_l1_db = "good"\n',
     ["[quality] loudness_l1_db must be a number, not a string"]),
]


def write_corrupt(folder: Path, case: str, corrupt, sha: str) -> Path:
    content = corrupt(GOOD.format(sha=sha))
    path = folder / f"{case}.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_the_good_template_is_good(tmp_path: Path, model_copy: Path, sha: str):
    path = tmp_path / "good.toml"
    path.write_text(GOOD.format(sha=sha))
    preset = read_preset(path, model_dirs=[model_copy.parent])
    assert preset.midi == {"gain_db": -3.0, "voice_mode": 2.0} and preset.effects[0].parameters == {"peak1_db": 2.0}


@pytest.mark.parametrize("case,corrupt,expected", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_each_fault_is_one_line_naming_the_file(tmp_path: Path, model_copy: Path, sha: str, case, corrupt, expected):
    path = write_corrupt(tmp_path, case, corrupt, sha)
    with pytest.raises(TimbrelError) as err:
        read_preset(path, model_dirs=[model_copy.parent])
    message = one_line(err)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_unreadable_path_is_one_line(tmp_path: Path):
    with pytest.raises(TimbrelError) as err:
        read_preset(tmp_path / "absent.toml", model_dirs=[])
    assert "absent.toml" in one_line(err)
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(TimbrelError) as err:
        read_preset(tmp_path / "folder.toml", model_dirs=[])
    assert "folder.toml" in one_line(err)


def test_check_model_false_skips_the_hash(tmp_path: Path, model_copy: Path, sha: str):
    path = write_corrupt(tmp_path, "other-model", lambda t: t.replace(sha, "0" * 64), sha)
    preset = read_preset(path, model_dirs=[model_copy.parent], check_model=False)
    assert preset.model_path == model_copy


def test_scan_lists_every_good_preset_beside_bad_files(library: Library, factory: Path, sha: str, model_copy: Path):
    write_factory(factory, full_preset(sha, "Factory Violin"))
    write_corrupt(factory, "broken-factory", lambda t: "[preset", sha)
    folder = library.presets_dir
    folder.mkdir(parents=True)
    (library.models_dir).mkdir()
    shutil.copyfile(model_copy, library.models_dir / "violin.onnx")
    for case, corrupt, _ in CORRUPTIONS:
        write_corrupt(folder, case, corrupt, sha)
    for name in ("Good One", "Good Two"):
        (folder / f"{slug(name)}.toml").write_text(GOOD.format(sha=sha).replace('"Violin"', f'"{name}"'))

    presets, problems = library.scan()

    assert [p.name for p in presets] == ["Factory Violin", "Good One", "Good Two"]
    assert presets[0].factory and not presets[1].factory
    assert len(problems) == len(CORRUPTIONS) + 1
    for line in problems:
        assert "\n" not in line
    for case, _, _ in CORRUPTIONS:
        assert sum(f"{case}.toml:" in line for line in problems) == 1, case
    assert library.get("good two").name == "Good Two"
    with pytest.raises(TimbrelError) as err:
        library.get("sha-mismatch")
    assert "sha-mismatch.toml" in one_line(err) and "sha256" in str(err.value)


def test_a_user_preset_cannot_shadow_a_factory_one(library: Library, factory: Path, sha: str):
    write_factory(factory, full_preset(sha))
    library.presets_dir.mkdir(parents=True)
    (library.presets_dir / "my-violin.toml").write_text(GOOD.format(sha=sha))

    presets, problems = library.scan()

    assert [p.name for p in presets] == ["Violin"] and presets[0].factory
    assert len(problems) == 1 and "my-violin.toml" in problems[0] and "taken by factory preset" in problems[0]


def test_model_hashes_are_cached_until_the_file_changes(library: Library, factory: Path, sha: str, monkeypatch):
    write_factory(factory, full_preset(sha))
    library.scan()
    calls = []
    real = preset_module.hashlib.sha256
    monkeypatch.setattr(preset_module.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    assert len(library.scan()[0]) == 1 and calls == []
    model = factory / "models" / "violin.onnx"
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert len(library.scan()[0]) == 1 and calls == [1]


# Search and filters ----------------------------------------------------------------------------

CATALOGUE = [
    ("Violin", "strings", ["bowed", "solo", "bright"], "Solo violin, expressive and bright", True),
    ("Viola", "strings", ["bowed", "warm"], "Darker than the violin", True),
    ("Cello", "strings", ["bowed", "warm", "low"], "Deep bowed strings", True),
    ("Alto Sax", "reed", ["jazz", "breathy"], "Alto saxophone", True),
    ("Trumpet", "brass", ["bright", "solo"], "Bright brass lead", True),
    ("Tuba", "brass", ["warm", "low"], "Low brass", True),
    ("French Horn", "brass", ["warm", "mellow"], "Mellow horn", True),
    ("Warm Pad", "synth", ["warm", "pad"], "A soft synth pad", False),
    ("Choir Aah", "voice", ["choir", "soft"], "Sung vowels", False),
]


@pytest.fixture
def catalogue(library: Library, factory: Path, sha: str) -> Library:
    for name, category, tags, description, is_factory in CATALOGUE:
        preset = Preset(name=name, model_file="violin.onnx", model_sha256=sha, category=category, tags=tags,
                        description=description, model_path=factory / "models" / "violin.onnx")
        if is_factory:
            write_factory(factory, preset)
        else:
            library.save(preset, name)
    return library


def names(presets: list[Preset]) -> list[str]:
    return [p.name for p in presets]


def test_search_exact_prefix_typo_and_words(catalogue: Library):
    assert catalogue.scan()[1] == []
    assert names(catalogue.search("violin")) == ["Violin", "Viola"]
    assert names(catalogue.search("VIOLIN"))[0] == "Violin"
    assert set(names(catalogue.search("vio"))) == {"Violin", "Viola"}
    assert names(catalogue.search("violn"))[0] == "Violin"
    assert names(catalogue.search("trumpt")) == ["Trumpet"]
    assert names(catalogue.search("sax")) == ["Alto Sax"]
    assert names(catalogue.search("alto sax")) == ["Alto Sax"]
    assert names(catalogue.search("horn french")) == ["French Horn"]
    assert set(names(catalogue.search("brass warm"))) == {"Tuba", "French Horn"}
    assert names(catalogue.search("bowed low")) == ["Cello"]
    assert names(catalogue.search("zzzz")) == []
    assert len(catalogue.search("")) == len(CATALOGUE)


def test_search_ranks_name_matches_first(catalogue: Library):
    found = names(catalogue.search("warm"))
    assert found[0] == "Warm Pad"
    assert set(found) == {"Warm Pad", "Viola", "Cello", "Tuba", "French Horn"}
    found = names(catalogue.search("solo"))
    assert set(found) == {"Violin", "Trumpet"}


def test_filters(catalogue: Library):
    assert set(names(catalogue.list(category="brass"))) == {"Trumpet", "Tuba", "French Horn"}
    assert set(names(catalogue.list(tag="WARM"))) == {"Viola", "Cello", "Tuba", "French Horn", "Warm Pad"}
    assert set(names(catalogue.list(category="brass", tag="warm"))) == {"Tuba", "French Horn"}
    assert len(catalogue.list()) == len(CATALOGUE)
    with pytest.raises(TimbrelError) as err:
        catalogue.list(category="pads")
    assert "strings" in one_line(err)


def test_get_by_name_or_slug_and_close_matches(catalogue: Library):
    assert catalogue.get("alto-sax").name == "Alto Sax"
    assert catalogue.get("ALTO SAX").name == "Alto Sax"
    assert catalogue.get("warm_pad").name == "Warm Pad"
    with pytest.raises(TimbrelError) as err:
        catalogue.get("violn")
    assert "'violn'" in one_line(err) and "Violin" in str(err.value)
    with pytest.raises(TimbrelError) as err:
        catalogue.get("qqqq")
    assert "no preset 'qqqq'" in one_line(err)


# Writing ---------------------------------------------------------------------------------------


def test_save_refuses_to_overwrite_without_force(library: Library, factory: Path, sha: str):
    preset = full_preset(sha, "Mine")
    preset.model_path = factory / "models" / "violin.onnx"
    path = library.save(preset, "Mine")
    assert path == library.presets_dir / "mine.toml"
    original = path.read_bytes()

    changed = apply_settings(preset, {"gain_db": "-9"})
    with pytest.raises(TimbrelError) as err:
        library.save(changed, "mine")
    message = one_line(err)
    assert "mine.toml" in message and "--force" in message
    assert path.read_bytes() == original

    assert library.save(changed, "Mine", force=True) == path
    assert library.get("mine").midi["gain_db"] == -9.0


@pytest.mark.parametrize("name,expected", [
    ("x" * 65, "longer than 64 characters"),
    ("Bell\x07Tone", "contains control characters"),
    ("-- ~ --", "needs at least one letter or digit"),
    ("   ", "cannot be empty"),
])
def test_a_bad_name_is_refused_in_one_line_and_nothing_is_written(library: Library, factory: Path, sha: str,
                                                                  name, expected):
    preset = full_preset(sha, "Mine")
    preset.model_path = factory / "models" / "violin.onnx"
    with pytest.raises(TimbrelError) as err:
        library.save(preset, name)
    assert expected in one_line(err)
    assert not library.presets_dir.exists() or os.listdir(library.presets_dir) == []


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(library: Library, factory: Path, sha: str, monkeypatch,
                                                              failing: str):
    preset = full_preset(sha, "Mine")
    preset.model_path = factory / "models" / "violin.onnx"
    path = library.save(preset, "Mine")
    original = path.read_bytes()
    real = getattr(os, failing)
    written = []

    def broken(*args):
        written.append([p.stat().st_size for p in library.presets_dir.glob(".*.part")])
        raise OSError(errno.EIO, "injected fault")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(TimbrelError) as err:
        library.save(apply_settings(preset, {"gain_db": "-20"}), "Mine", force=True)
    monkeypatch.setattr(os, failing, real)

    message = one_line(err)
    assert "mine.toml" in message and "injected fault" in message
    assert written and written[0] and written[0][0] > 0, "the fault came before the temporary file was written"
    assert path.read_bytes() == original
    assert sorted(os.listdir(library.presets_dir)) == ["mine.toml"]


def test_factory_presets_are_read_only(library: Library, factory: Path, sha: str):
    path = write_factory(factory, full_preset(sha))
    original = path.read_bytes()
    preset = library.get("violin")
    attempts = [
        lambda: library.save(preset, "Violin"),
        lambda: library.save(preset, "VIOLIN", force=True),
        lambda: library.derive("Violin", "violin", {"gain_db": "-6"}, force=True),
        lambda: library.rename("Violin", "Fiddle"),
        lambda: library.remove("Violin"),
    ]
    for attempt in attempts:
        with pytest.raises(TimbrelError) as err:
            attempt()
        assert "read-only" in one_line(err)
    assert path.read_bytes() == original
    assert not library.presets_dir.exists() or not any(library.presets_dir.iterdir())


def test_derive_applies_settings_and_keeps_the_model(library: Library, factory: Path, sha: str):
    write_factory(factory, full_preset(sha))
    path = library.derive("violin", "Soft Violin", {
        "gain_db": "-12", "transfer.gate_db": -40, "midi.voice_mode": "mono", "effects.1.bypass": "off",
        "effects.eq.peak1_db": "4.5", "effects.reverb.mix": "0.6", "tags": "soft, bowed ,", "category": "strings",
        "description": "Softer",
    })
    derived = read_preset(path, model_dirs=library.model_dirs)
    base = library.get("Violin")
    assert derived.name == "Soft Violin" and not derived.factory and path.parent == library.presets_dir
    assert derived.midi == {**base.midi, "gain_db": -12.0, "voice_mode": 1.0}
    assert derived.transfer["gate_db"] == -40.0
    assert [e.bypass for e in derived.effects] == [False, False, False]
    assert derived.effects[0].parameters["peak1_db"] == 4.5 and derived.effects[2].parameters["mix"] == 0.6
    assert derived.tags == ["soft", "bowed"] and derived.description == "Softer"
    assert (derived.model_file, derived.model_sha256) == (base.model_file, base.model_sha256)
    assert derived.model_path == factory / "models" / "violin.onnx"
    assert not library.models_dir.exists(), "a model the lookup finds was copied"

    transfer = read_preset(library.derive("Violin", "Sung Violin", {"mode": "transfer", "gain_db": "6"}),
                           model_dirs=library.model_dirs)
    assert transfer.mode == "transfer" and transfer.transfer["gain_db"] == 6.0 and transfer.midi == base.midi


@pytest.mark.parametrize("settings,expected", [
    ({"gain_db": "40"}, "out of range (-60 to 12 dB)"),
    ({"midi.voice_mode": "chord"}, "poly, mono, legato"),
    ({"midi.gian_db": "1"}, "did you mean 'gain_db'"),
    ({"effects.7.bypass": "true"}, "no effect 7"),
    ({"effects.chorus.mix": "0.5"}, "no effect 'chorus'"),
    ({"effects.0.bypass": "maybe"}, "true or false"),
    ({"effects.eq.peak1_db": "loud"}, "a number"),
    ({"category": "pads"}, "not one of"),
    ({"mode": "guitar"}, "midi, transfer"),
    ({"colour": "red"}, "unknown setting 'colour'"),
    ({"transfer.colour": "red"}, "no parameter 'colour'"),
    ({"a.b.c.d": "1"}, "unknown setting"),
])
def test_derive_rejects_bad_settings(library: Library, factory: Path, sha: str, settings, expected):
    write_factory(factory, full_preset(sha))
    with pytest.raises(TimbrelError) as err:
        library.derive("Violin", "Other", settings)
    message = one_line(err)
    assert expected in message and next(iter(settings)) in message
    assert not library.presets_dir.exists()


def test_repeated_effects_are_named_as_chain_keys(sha: str, loaded):
    preset = Preset(name="Two", model_file="violin.onnx", model_sha256=sha,
                    effects=[EffectSettings("eq"), EffectSettings("reverb"), EffectSettings("eq")])
    changed = apply_settings(preset, {"effects.eq-2.peak1_db": "3", "effects.eq.bypass": "yes"})
    assert changed.effects[2].parameters == {"peak1_db": 3.0} and changed.effects[0].bypass
    assert preset.effects[2].parameters == {} and not preset.effects[0].bypass
    keys = [slot.key for slot in build_chain(changed, model=loaded).slots]
    assert keys == effect_keys(changed) == ["eq", "reverb", "eq-2"]


def test_rename_and_remove_user_presets(library: Library, factory: Path, sha: str):
    write_factory(factory, full_preset(sha))
    library.derive("Violin", "Mine", {})
    library.derive("Violin", "Taken", {})

    with pytest.raises(TimbrelError) as err:
        library.rename("Mine", "Taken")
    assert "--force" in one_line(err)
    new = library.rename("mine", "Yours")
    assert new == library.presets_dir / "yours.toml" and not (library.presets_dir / "mine.toml").exists()
    assert library.get("Yours").midi == library.get("Violin").midi
    assert library.rename("Yours", "YOURS") == new and library.get("yours").name == "YOURS"

    assert library.remove("YOURS") == new and not new.exists()
    with pytest.raises(TimbrelError):
        library.get("YOURS")
    with pytest.raises(TimbrelError) as err:
        library.remove("nothing-here")
    assert "nothing-here" in one_line(err)


# Models ---------------------------------------------------------------------------------------


def test_a_dropped_model_lists_and_a_corrupt_one_is_one_problem(library: Library, factory: Path, sha: str,
                                                               model_copy: Path):
    write_factory(factory, full_preset(sha))
    library.models_dir.mkdir(parents=True)
    shutil.copyfile(model_copy, library.models_dir / "Dropped Fiddle.onnx")
    (library.models_dir / "broken.onnx").write_bytes(b"not a model at all" * 100)

    presets, problems = library.scan()

    assert names(presets) == ["Violin", "Dropped Fiddle"]
    dropped = library.get("dropped fiddle")
    assert dropped.implicit and dropped.category == "user" and dropped.effects == [] and dropped.midi == {}
    assert dropped.model_path == library.models_dir / "Dropped Fiddle.onnx" and dropped.model_sha256 == sha
    assert len(problems) == 1 and "broken.onnx" in problems[0] and "\n" not in problems[0]
    with pytest.raises(TimbrelError) as err:
        library.remove("Dropped Fiddle")
    assert "model file" in one_line(err)

    path = library.derive("Dropped Fiddle", "Fiddle", {"gain_db": "-3"})
    assert names(library.scan()[0]) == ["Violin", "Fiddle"], "a model a preset plays is not listed apart"
    assert read_preset(path, model_dirs=library.model_dirs).model_path == library.models_dir / "Dropped Fiddle.onnx"


def test_import_model_copies_it_and_writes_a_preset(library: Library, factory: Path, tmp_path: Path, model_copy: Path):
    source = tmp_path / "elsewhere" / "my model.onnx"
    source.parent.mkdir()
    shutil.copyfile(model_copy, source)

    preset = library.import_model(source, name="My Violin")

    copied = library.models_dir / "my-violin.onnx"
    assert copied.read_bytes() == source.read_bytes()
    assert preset.path == library.presets_dir / "my-violin.toml" and preset.model_path == copied
    assert (preset.name, preset.category, preset.model_sha256) == ("My Violin", "user", sha256_file(source))
    assert names(library.scan()[0]) == ["My Violin"] and library.scan()[1] == []
    assert sorted(os.listdir(library.models_dir)) == ["my-violin.onnx"]

    with pytest.raises(TimbrelError) as err:
        library.import_model(source, name="My Violin")
    assert "--force" in one_line(err)
    assert library.import_model(source, name="My Violin", force=True) == preset

    assert library.import_model(source).name == "my model"


def test_import_refuses_bad_models_and_factory_names(library: Library, factory: Path, tmp_path: Path, sha: str,
                                                     model_copy: Path, monkeypatch):
    write_factory(factory, full_preset(sha))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage")
    with pytest.raises(TimbrelError) as err:
        library.import_model(junk)
    assert "junk.onnx" in one_line(err)
    with pytest.raises(TimbrelError) as err:
        library.import_model(model_copy, name="violin")
    assert "read-only" in one_line(err)
    assert not library.user_dir.exists()

    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "disk full")))
    with pytest.raises(TimbrelError) as err:
        library.import_model(model_copy, name="Fiddle")
    assert "disk full" in one_line(err)
    assert os.listdir(library.models_dir) == []


def test_import_onto_a_different_model_keeps_it_and_writes_no_preset(library: Library, model_copy: Path):
    library.models_dir.mkdir(parents=True)
    theirs = library.models_dir / "fiddle.onnx"
    theirs.write_bytes(b"the user's own fiddle model")
    with pytest.raises(TimbrelError) as err:
        library.import_model(model_copy, name="Fiddle")
    message = one_line(err)
    assert message.startswith(f"{theirs}: a different model is already there") and "--force" in message
    assert theirs.read_bytes() == b"the user's own fiddle model"
    assert not library.presets_dir.exists() or os.listdir(library.presets_dir) == []


def test_default_user_folder_follows_platformdirs(monkeypatch, tmp_path: Path, factory: Path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    library = Library(factory_dir=factory)
    assert library.user_dir == tmp_path / "data" / "timbrel"
    assert library.models_dir == tmp_path / "data" / "timbrel" / "models"
    assert Library().factory_dir == default_model().parent.parent
