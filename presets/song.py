"""A General MIDI song's ensemble: one part per channel that plays notes, each the factory
preset the GM map (`timbrel.presets.gm`) chooses for the channel's program."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

from timbrel.engine.realtime.events import NOTE_ON, PROGRAM_CHANGE
from timbrel.engine.render import midi_events
from timbrel.plugin.ensemble import Ensemble
from timbrel.presets.build import build_chain
from timbrel.presets.gm import DRUM_CHANNEL, GM_PROGRAMS, choice_for_program
from timbrel.presets.library import Library
from timbrel.presets.multi import DEFAULT_VOICES, Multi, PartSpec

DRUMS_SKIPPED = "channel 10 (drums) is skipped: no factory model is percussive"


def song_multi(path: str | os.PathLike, voices: int = DEFAULT_VOICES) -> tuple[Multi, list[str]]:
    """The multi that plays the MIDI file `path`, and one line per choice made (a part per
    channel with notes: its GM program, the preset and any transpose; drums skipped).

    A channel starts with the program of its first program change (none: program 0, as GM
    says); `follow_programs` follows the later ones while the song plays.
    The parts share the headroom: each plays at -10 log10(parts) dB, so that uncorrelated
    parts add up to the level of one.
    """
    programs: dict[int, int] = {}
    noted: list[int] = []
    for _, packed in midi_events(path):
        kind, channel = packed & 0xF0, packed & 0x0F
        if kind == PROGRAM_CHANGE and channel not in programs and channel not in noted:
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
    share = -10.0 * math.log10(max(len(parts), 1))
    for part in parts:
        if share:
            part.settings["volume_db"] = round(share, 2)
    return Multi(name=f"General MIDI: {os.path.basename(path)}", parts=parts), lines


def follow_programs(ensemble: Ensemble, library: Library | None = None) -> Callable[[int], None]:
    """A hook for each packed message a render plays (`timbrel.engine.render.render_events`):
    a program change on a part's channel switches that part to the GM map's preset for it
    (prepared at once, on the rendering thread; the part takes it at the next block) unless it
    plays that preset already. Drums and channels without a part are left alone."""
    library = library or Library()
    playing = {int(part.params.get("midi_channel")) - 1: part.name for part in ensemble.parts}

    def hook(packed: int) -> None:
        channel = packed & 0x0F
        if packed & 0xF0 != PROGRAM_CHANGE or channel == DRUM_CHANNEL or channel not in playing:
            return
        choice = choice_for_program((packed >> 8) & 0x7F)
        preset = library.get(choice.preset)
        if preset.name == playing[channel]:
            return
        index = next(i for i, part in enumerate(ensemble.parts) if int(part.params.get("midi_channel")) == channel + 1)
        voices = ensemble.parts[index].chain.instrument.voices
        ensemble.switch_part(index, build_chain(preset, "midi", voices=voices), preset.name)
        ensemble.set_parameter(f"part{index + 1}.transpose", float(choice.transpose_st))
        playing[channel] = preset.name

    return hook
