"""A General MIDI song's ensemble: one part per channel that plays notes, each the factory
preset the GM map (`timbrel.presets.gm`) chooses for the channel's program."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from timbrel.engine.errors import TimbrelError
from timbrel.engine.realtime.events import CONTROL_CHANGE, NOTE_ON, PROGRAM_CHANGE
from timbrel.engine.render import midi_events
from timbrel.plugin.ensemble import Ensemble
from timbrel.plugin.model import TimbreModel, load_model
from timbrel.presets.build import build_chain
from timbrel.presets.gm import DRUM_CHANNEL, GM_PROGRAMS, choice_for_program
from timbrel.presets.library import Library
from timbrel.presets.model_files import model_path
from timbrel.presets.multi import DEFAULT_VOICES, Multi, PartSpec

DRUMS_SKIPPED = "channel 10 (drums) is skipped: no factory model is percussive"


def song_multi(path: str | os.PathLike, voices: int = DEFAULT_VOICES,
               events: list[tuple[float, int]] | None = None) -> tuple[Multi, list[str]]:
    """The multi that plays the MIDI file `path`, and one line per choice made (a part per
    channel with notes: its GM program, the preset and any transpose; drums skipped).

    A channel starts with the program of its last program change before its first note (none:
    program 0, as GM says); `follow_programs` follows the later ones while the song plays.
    The parts share the headroom: each plays at -10 log10(parts) dB, so that uncorrelated
    parts add up to the level of one. A song with no notes outside channel 10 is a one-line
    TimbrelError naming the file. `events` are the file's messages if already read (`midi_events`).
    """
    programs: dict[int, int] = {}
    noted: list[int] = []
    for _, packed in events if events is not None else midi_events(path):
        kind, channel = packed & 0xF0, packed & 0x0F
        if kind == PROGRAM_CHANGE and channel not in noted:
            programs[channel] = (packed >> 8) & 0x7F
        elif kind == NOTE_ON and (packed >> 16) & 0x7F and channel not in noted:
            noted.append(channel)
    parts, lines = [], []
    for channel in sorted(noted):
        if channel == DRUM_CHANNEL:
            lines.append(DRUMS_SKIPPED)
            continue
        program = programs.get(channel, 0)
        choice = choice_for_program(program)
        settings = {"midi_channel": float(channel + 1)}
        if choice.transpose_st:
            settings["transpose"] = float(choice.transpose_st)
        parts.append(PartSpec(preset=choice.preset, voices=voices, settings=settings))
        shift = f", transposed {choice.transpose_st:+d} st" if choice.transpose_st else ""
        lines.append(f"channel {channel + 1}: program {program + 1} {GM_PROGRAMS[program]} -> {choice.preset}{shift}")
    if not parts:
        raise TimbrelError(f"{path}: no notes to play outside channel 10 (drums, which no factory model plays)")
    share = -10.0 * math.log10(len(parts))
    for part in parts:
        if share:
            part.settings["volume_db"] = round(share, 2)
    return Multi(name=f"General MIDI: {os.path.basename(path)}", parts=parts), lines


def general_midi_multi(voices: int = 4) -> Multi:
    """A General MIDI ensemble to play live: a part of `voices` voices on each channel but 10
    (drums), each playing program 1's preset until a program change on its channel chooses
    another (`play_program`), at -6 dB each."""
    first = choice_for_program(0)
    parts = [PartSpec(preset=first.preset, voices=voices, settings={"midi_channel": float(channel + 1), "volume_db": -6.0})
             for channel in range(16) if channel != DRUM_CHANNEL]
    return Multi(name=f"General MIDI ({GM_PROGRAMS[0]} until a program change)", parts=parts)


def plays_as_ensemble(events: list[tuple[float, int]]) -> bool:
    """Whether a MIDI file's messages (`midi_events`) want its General MIDI instruments: it
    changes program, or plays notes on more than one channel and is not MPE (whose channels are
    one instrument's notes: it sends an MPE Configuration Message, RPN 6 on channel 1 or 16)."""
    if any(packed & 0xF0 == PROGRAM_CHANGE for _, packed in events):
        return True
    controls = {(packed & 0x0F, (packed >> 8) & 0x7F, (packed >> 16) & 0x7F)
                for _, packed in events if packed & 0xF0 == CONTROL_CHANGE}
    if any({(channel, 101, 0), (channel, 100, 6)} <= controls for channel in (0, 15)):
        return False
    return len({packed & 0x0F for _, packed in events if packed & 0xF0 == NOTE_ON}) > 1


class LoadedModels:
    """Models loaded once each, by file and contents (`get(path, sha256)`): what a render's
    program changes play, so that going back to an instrument reuses its model and its
    onnxruntime session in the ensemble."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], TimbreModel] = {}

    def get(self, path: str | os.PathLike, sha256: str) -> TimbreModel:
        """The model in file `path` whose contents hash to `sha256`."""
        key = (str(Path(path).resolve()), sha256)
        if key not in self._models:
            self._models[key] = load_model(path)
        return self._models[key]


def play_program(ensemble: Ensemble, index: int, program: int, library: Library, models) -> bool:
    """Have part `index` of `ensemble` play General MIDI program `program` (0 to 127): the map's
    preset (prepared here, taken by the audio thread at a block boundary) and its transpose.
    Returns False, and changes nothing, when the part plays that already. `models` is a
    `LoadedModels` (or the session's model cache)."""
    choice = choice_for_program(program)
    part = ensemble.parts[index]
    preset = library.get(choice.preset)
    transpose = float(choice.transpose_st)
    if part.playing == preset.name and part.params.get("transpose") == transpose:
        return False
    if part.playing != preset.name:
        model = models.get(model_path(preset), preset.model_sha256)
        voices = part.chain.instrument.voices
        ensemble.switch_part(index, build_chain(preset, "midi", voices=voices, model=model), preset.name)
    ensemble.set_parameter(f"part{index + 1}.transpose", transpose)
    return True


def follow_programs(ensemble: Ensemble, library: Library | None = None) -> Callable[[int], None]:
    """A hook for each packed message a render plays (`timbrel.engine.render.render_events`):
    a program change on a part's channel has that part play the GM map's choice for it
    (`play_program`). Drums and channels without a part are left alone."""
    library = library or Library()
    models = LoadedModels()
    parts = {int(part.params.get("midi_channel")) - 1: i for i, part in enumerate(ensemble.parts)}

    def hook(packed: int) -> None:
        channel = packed & 0x0F
        if packed & 0xF0 == PROGRAM_CHANGE and channel != DRUM_CHANNEL and channel in parts:
            play_program(ensemble, parts[channel], (packed >> 8) & 0x7F, library, models)

    return hook
