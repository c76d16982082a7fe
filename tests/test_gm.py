"""The General MIDI program map: names, families, presets that exist and play MIDI, octave
transposes that bring a program into its model's trained range, and the doc table."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from timbrel.plugin.model import load_model
from timbrel.presets.gm import (
    DRUM_CHANNEL,
    GM_FAMILIES,
    GM_MAP,
    GM_PROGRAMS,
    GMChoice,
    choice_for_program,
)
from timbrel.presets.library import Library

DOC = Path(__file__).resolve().parent.parent / "docs" / "GM.md"
NO_MODEL_FAMILIES = ("Piano", "Chromatic Percussion", "Guitar", "Percussive", "Sound Effects")
USUAL_RANGE = {9: (79, 108), 13: (65, 108), 72: (74, 108)}
"""Sounding ranges (MIDI notes) of the transposed programs: glockenspiel, xylophone, piccolo."""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """The factory presets, with an empty user folder so no user preset can stand in for one."""
    return Library(user_dir=tmp_path_factory.mktemp("user"))


def midi_note(f0_hz: float) -> float:
    """The MIDI note number (fractional) of `f0_hz`."""
    return 69.0 + 12.0 * math.log2(f0_hz / 440.0)


def test_128_distinct_programs_in_order() -> None:
    assert len(GM_PROGRAMS) == 128 and len(set(GM_PROGRAMS)) == 128
    assert len(GM_MAP) == 128
    for program, choice in enumerate(GM_MAP):
        assert isinstance(choice, GMChoice)
        assert choice.program == program
        assert choice.name == GM_PROGRAMS[program]


@pytest.mark.parametrize("program, name", [
    (0, "Acoustic Grand Piano"), (40, "Violin"), (56, "Trumpet"), (73, "Flute"), (127, "Gunshot"),
])
def test_known_names(program: int, name: str) -> None:
    assert GM_PROGRAMS[program] == name
    assert choice_for_program(program).name == name


def test_sixteen_families_of_eight() -> None:
    assert len(GM_FAMILIES) == 16 and len(set(GM_FAMILIES)) == 16
    for family in GM_FAMILIES:
        assert sum(choice.family == family for choice in GM_MAP) == 8, family
    assert [GM_MAP[p].family for p in (0, 40, 56, 73, 127)] == ["Piano", "Strings", "Brass", "Pipe", "Sound Effects"]
    for choice in GM_MAP:
        assert choice.family == GM_FAMILIES[choice.program // 8]


def test_every_preset_is_a_factory_midi_preset(library: Library) -> None:
    assert library.get("voice-to-flute").mode == "transfer"
    for slug in sorted({choice.preset for choice in GM_MAP}):
        preset = library.get(slug)
        assert preset.factory, slug
        assert preset.slug == slug
        assert preset.mode == "midi", f"{slug} is a {preset.mode} preset"
        assert preset.model_path is not None and preset.model_path.is_file()


def test_own_instruments_play_their_own_model(library: Library) -> None:
    own = {40: "violin", 42: "cello", 43: "contrabass", 52: "choir_aah", 56: "trumpet", 57: "trombone",
           58: "tuba", 60: "french_horn", 65: "alto_sax", 68: "oboe", 70: "bassoon", 71: "clarinet", 73: "flute"}
    for program, model in own.items():
        choice = choice_for_program(program)
        assert library.get(choice.preset).model_file == f"{model}.onnx", choice
        assert choice.transpose_st == 0, choice


def test_transposes_are_octaves_within_two() -> None:
    for choice in GM_MAP:
        assert isinstance(choice.transpose_st, int)
        assert choice.transpose_st % 12 == 0 and -24 <= choice.transpose_st <= 24, choice
    assert {c.program for c in GM_MAP if c.transpose_st} == set(USUAL_RANGE)


@pytest.mark.parametrize("program", sorted(USUAL_RANGE))
def test_transpose_moves_the_program_towards_its_models_range(library: Library, program: int) -> None:
    choice = choice_for_program(program)
    f0_hz = load_model(library.get(choice.preset).model_path).info.f0_hz
    trained_low, trained_high = midi_note(f0_hz["p05"]), midi_note(f0_hz["p95"])
    trained_centre = (trained_low + trained_high) / 2
    low, high = USUAL_RANGE[program]
    assert high > trained_high + 12, "the untransposed range overshoots the model by over an octave"
    centre = (low + high) / 2
    assert abs(centre + choice.transpose_st - trained_centre) < abs(centre - trained_centre)
    assert abs(centre + choice.transpose_st - trained_centre) <= 6.5


def test_reasons_are_one_sentence_and_say_when_no_model_fits() -> None:
    for choice in GM_MAP:
        reason = choice.reason
        assert reason and reason.endswith(".") and "\n" not in reason and "|" not in reason, choice
        assert reason.count(". ") == 0, choice
        if choice.family in NO_MODEL_FAMILIES:
            assert "no factory model" in reason, choice


def test_drums_are_channel_ten() -> None:
    assert DRUM_CHANNEL == 9


@pytest.mark.parametrize("program", [128, -1, 1000])
def test_out_of_range_program_is_a_one_line_value_error(program: int) -> None:
    with pytest.raises(ValueError, match="0 to 127") as error:
        choice_for_program(program)
    assert "\n" not in str(error.value)


def test_in_range_program_gives_its_choice() -> None:
    assert choice_for_program(73) is GM_MAP[73]
    assert choice_for_program(73).preset == "flute"


def test_doc_table_agrees_with_the_map() -> None:
    row = re.compile(r"^\| (\d+) \| (.+?) \| (\S+) \| ([+-]?\d+) \| (.+) \|$")
    rows = [m.groups() for m in map(row.match, DOC.read_text(encoding="utf-8").splitlines()) if m]
    assert len(rows) == 128
    for (number, name, preset, transpose, reason), choice in zip(rows, GM_MAP):
        assert int(number) == choice.program + 1
        assert (name, preset, int(transpose), reason) == (choice.name, choice.preset, choice.transpose_st, choice.reason)
