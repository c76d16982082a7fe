"""The factory preset library: one preset per factory model, plus designed variations.

Variations change parameters and effects only; they play the same model. `write_presets`
turns this table, the models in `presets/factory/models` and the measured quality figures into
the TOML files under `presets/`.
"""

from __future__ import annotations

from pathlib import Path

from timbrel.engine.atomic import write_text
from timbrel.plugin.effects import effect_class
from timbrel.plugin.instrument import PARAMETERS as MIDI_PARAMETERS
from timbrel.plugin.transfer import PARAMETERS as TRANSFER_PARAMETERS
from timbrel.presets.model_files import sha256_file
from timbrel.presets.names import slug
from timbrel.presets.preset import EffectSettings, Preset
from timbrel.presets.writing import preset_to_toml

AUTHOR = "timbrel"
LICENCE = "MIT (models trained on renders of FluidR3_GM, MIT)"

# name, model, category, tags, description, mode, midi values, transfer values, effects
PRESETS = [
    ("Violin", "violin", "strings", ["bowed", "solo", "expressive"],
     "A solo violin, bright and close, with its learned body and room.", "midi",
     {"vibrato_cents": 30, "attack_s": 0.06, "release_s": 0.3}, {}, [("eq", {"low_cut": "on", "low_cut_hz": 150})]),
    ("Cello", "cello", "strings", ["bowed", "solo", "warm", "low"],
     "A warm solo cello for melodies in the tenor range.", "midi",
     {"vibrato_cents": 25, "attack_s": 0.08, "release_s": 0.4}, {}, [("eq", {"low_cut": "on", "low_cut_hz": 55})]),
    ("Contrabass", "contrabass", "strings", ["bowed", "bass", "low", "dark"],
     "Bowed double bass: the floor of the string section.", "midi",
     {"attack_s": 0.1, "release_s": 0.5}, {}, []),
    ("Flute", "flute", "woodwind", ["breathy", "airy", "solo", "high"],
     "Concert flute with its breath noise; light and agile.", "midi",
     {"vibrato_cents": 20, "attack_s": 0.04}, {}, [("reverb", {"mix": 0.15})]),
    ("Clarinet", "clarinet", "reed", ["woody", "hollow", "solo"],
     "B-flat clarinet: the hollow odd-harmonic tone of the low register.", "midi",
     {"attack_s": 0.03}, {}, []),
    ("Oboe", "oboe", "reed", ["nasal", "double reed", "solo", "bright"],
     "Oboe: a focused, nasal double-reed line.", "midi",
     {"vibrato_cents": 20, "attack_s": 0.03}, {}, []),
    ("Bassoon", "bassoon", "reed", ["double reed", "low", "woody"],
     "Bassoon: a dark, reedy bass voice.", "midi",
     {"attack_s": 0.04}, {}, []),
    ("Trumpet", "trumpet", "brass", ["bright", "solo", "fanfare"],
     "A bright open trumpet.", "midi",
     {"attack_s": 0.02, "release_s": 0.15}, {}, [("compressor", {"threshold_db": -20, "ratio": 3})]),
    ("Trombone", "trombone", "brass", ["warm", "slide", "low"],
     "Tenor trombone, with a little glide in mono mode for slides.", "midi",
     {"attack_s": 0.04, "glide_s": 0.12}, {}, []),
    ("French Horn", "french_horn", "brass", ["warm", "mellow", "round"],
     "French horn: round and mellow, for pads and calls.", "midi",
     {"attack_s": 0.07, "release_s": 0.4}, {}, [("reverb", {"mix": 0.2})]),
    ("Tuba", "tuba", "brass", ["bass", "low", "round"],
     "Tuba: a round brass bass.", "midi",
     {"attack_s": 0.05}, {}, []),
    ("Alto Sax", "alto_sax", "reed", ["sax", "jazz", "solo", "breathy"],
     "Alto saxophone for jazz and pop leads.", "midi",
     {"vibrato_cents": 35, "attack_s": 0.03}, {}, []),
    ("Choir Aah", "choir_aah", "voice", ["choir", "vocal", "pad", "aah"],
     "A choir singing 'aah': soft pads and slow swells.", "midi",
     {"attack_s": 0.25, "release_s": 0.8}, {}, [("chorus", {"mix": 0.3, "depth_ms": 2})]),
    # Designed variations: the same models, different parameters and effects.
    ("Violin Section", "violin", "strings", ["bowed", "ensemble", "pad", "wide"],
     "The violin doubled by a slow chorus in a larger room: an ensemble for chords.", "midi",
     {"attack_s": 0.2, "release_s": 0.6, "vibrato_cents": 15},
     {}, [("chorus", {"rate_hz": 0.4, "depth_ms": 6, "mix": 0.5}), ("reverb", {"mix": 0.35})]),
    ("Cello Legato", "cello", "strings", ["bowed", "legato", "mono", "expressive"],
     "Monophonic legato cello: overlapping notes slur with a short glide.", "midi",
     {"voice_mode": "legato", "glide_s": 0.08, "vibrato_cents": 30}, {}, []),
    ("Muted Trumpet", "trumpet", "brass", ["muted", "jazz", "nasal"],
     "The trumpet through a cup-mute EQ: no lows, a nasal bump, softened highs.", "midi",
     {"loudness_shift_db": -4},
     {}, [("eq", {"low_cut": "on", "low_cut_hz": 400, "peak1_hz": 1500, "peak1_db": 8, "peak1_q": 1.5,
                  "high_shelf_hz": 5000, "high_shelf_db": -10})]),
    ("Sax Lead", "alto_sax", "reed", ["sax", "lead", "mono", "delay"],
     "Mono alto sax lead with compression and a dotted-eighth echo at 120 BPM.", "midi",
     {"voice_mode": "mono", "glide_s": 0.03, "vibrato_cents": 40},
     {}, [("compressor", {"threshold_db": -24, "ratio": 4, "makeup_db": 4}),
          ("delay", {"time_ms": 375, "feedback": 0.3, "mix": 0.25, "tone_hz": 4000, "ping_pong": "on"})]),
    ("Voice to Flute", "flute", "woodwind", ["transfer", "microphone", "singing", "breathy"],
     "Sing or whistle into the microphone and a flute follows your pitch and loudness.", "transfer",
     {}, {"gate_db": -60, "quantize": 0.5, "octave": 1, "pitch_floor_hz": 100}, [("reverb", {"mix": 0.2})]),
    ("Whistle to Trumpet", "trumpet", "brass", ["transfer", "microphone", "whistle", "low latency"],
     ("Whistle, or play a recorder or flute, into the microphone: a trumpet follows an octave down. "
      "Its 250 Hz pitch floor keeps the pitch window short, for the lowest latency."), "transfer",
     {}, {"gate_db": -60, "octave": -1, "pitch_floor_hz": 250}, [("reverb", {"mix": 0.15})]),
]


def _effect(spec: tuple[str, dict]):
    kind, values = spec
    return EffectSettings(type=kind, parameters=_values(effect_class(kind).parameters, values))


def _values(parameters, values: dict) -> dict[str, float]:
    """Values by parameter id, switch choices given by name turned into their index."""
    out = {}
    for key, value in values.items():
        param = next(p for p in parameters if p.id == key)
        out[key] = float(param.choices.index(value)) if isinstance(value, str) else float(value)
    return out


def write_presets(presets_dir: Path, quality: dict, recipes: dict) -> list[Path]:
    """Write every factory preset whose model exists in `presets_dir/models`; returns the files."""
    written = []
    for name, model, category, tags, description, mode, midi, transfer, effects in PRESETS:
        path = presets_dir / "models" / f"{model}.onnx"
        if not path.is_file():
            continue
        preset = Preset(
            name=name, model_file=path.name, model_sha256=sha256_file(path), category=category, tags=list(tags),
            description=description, author=AUTHOR, licence=LICENCE, mode=mode,
            midi=_values(MIDI_PARAMETERS, midi), transfer=_values(TRANSFER_PARAMETERS, transfer),
            effects=[_effect(e) for e in effects], recipe=dict(recipes.get(model, {})),
            quality={k: float(v) for k, v in quality.get(model, {}).items() if isinstance(v, (int, float))},
        )
        target = presets_dir / f"{slug(name)}.toml"
        write_text(target, preset_to_toml(preset))
        written.append(target)
    return written
