"""The preset file: one TOML file naming a model, how to play it, and the effects after it.

Format 1, the reference (every table but `[preset]` and `[model]` may be left out):

    format = 1

    [preset]
    name = "Violin"               # display name; the file's name is its slug (violin.toml)
    category = "strings"          # strings, woodwind, brass, reed, voice, synth or user (default)
    tags = ["bowed", "solo"]
    description = "..."
    author = "timbrel"
    licence = "MIT"

    [model]
    file = "violin.onnx"          # a file name, looked up in: the preset file's folder/models,
                                  # then the user models folder, then the factory models folder
    sha256 = "…"                  # 64 hex digits, of the model file; a mismatch is a fault

    [instrument]
    mode = "midi"                 # "midi" (MidiInstrument) or "transfer" (TimbreTransfer): how it plays by default

    [instrument.midi]             # timbrel.plugin.instrument.PARAMETERS ids → values, in their units
    gain_db = 0.0
    voice_mode = "legato"         # a switch may be given by choice name or index

    [instrument.transfer]         # timbrel.plugin.transfer.PARAMETERS ids → values
    gate_db = -55.0

    [instrument.learn]            # MIDI learn: controller number → MIDI instrument parameter id
    2 = "auto_vibrato_cents"      # (not 6, 38, 64, 98 to 101 or 120 to 127)

    [[effects]]                   # in signal order
    type = "eq"                   # a name for timbrel.plugin.effects.create_effect
    bypass = false                # default false
    [effects.parameters]          # the effect's parameter ids → values
    peak1_db = 2.0

    [recipe]                      # free-form: how the model was built (command, data seed…)
    [quality]                     # free-form names → numbers: held-out spectral loss, f0 error, loudness L1

Parameter values are checked, never clamped: a value outside a parameter's range is a
fault that names the range. Values left out keep the parameter's default. Every fault is
a `TimbrelError` of one line naming the file and what is wrong with it.
"""

from __future__ import annotations

import copy
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Parameter
from timbrel.plugin.effects import effect_class
from timbrel.plugin.instrument import PARAMETERS as MIDI_PARAMETERS
from timbrel.plugin.instrument import RESERVED_CC, RESERVED_CC_TEXT
from timbrel.plugin.lv2.description import LV2Unavailable
from timbrel.plugin.transfer import PARAMETERS as TRANSFER_PARAMETERS
from timbrel.presets.faults import PresetFault, kind_of, one_line, shown, suggestion
from timbrel.presets.folders import default_model_dirs
from timbrel.presets.model_files import find_model, model_dirs_for, sha256_file
from timbrel.presets.names import check_name, slug

FORMAT = 1
CATEGORIES = ("strings", "woodwind", "brass", "reed", "voice", "synth", "user")
MODES = ("midi", "transfer")

_TOP = ("format", "preset", "model", "instrument", "effects", "recipe", "quality")
_PRESET = ("name", "category", "tags", "description", "author", "licence")
_MODEL = ("file", "sha256")
_INSTRUMENT = ("mode", "midi", "transfer", "learn")
_EFFECT = ("type", "bypass", "parameters")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class EffectSettings:
    """One `[[effects]]` entry: the effect type, its parameter values (only those given), bypass.

    `missing` is "" for an effect that can be made, else one line saying why it cannot (an LV2
    plugin not installed here, or one timbrel cannot host): the preset still loads, plays
    without it, and writes it back as read (its parameters unchecked).
    """

    type: str
    parameters: dict[str, float] = field(default_factory=dict)
    bypass: bool = False
    missing: str = field(default="", compare=False)


@dataclass
class Preset:
    """A preset's contents (compared by `==`) and where it came from (not compared).

    `midi` and `transfer` hold only the parameter values the preset sets (switches as choice
    indices); the others keep their defaults. `path` is the file read (the `.onnx` itself for
    an `implicit` preset made from a bare model file), `model_path` the model file found for
    `model_file` (None when it was not looked for or not found), `factory` marks read-only presets.
    """

    name: str
    model_file: str
    model_sha256: str
    category: str = "user"
    tags: list[str] = field(default_factory=list)
    description: str = ""
    author: str = ""
    licence: str = ""
    mode: str = "midi"
    midi: dict[str, float] = field(default_factory=dict)
    transfer: dict[str, float] = field(default_factory=dict)
    effects: list[EffectSettings] = field(default_factory=list)
    learn: dict[int, str] = field(default_factory=dict)
    """MIDI learn: controller number → MIDI instrument parameter id."""
    recipe: dict = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)
    factory: bool = field(default=False, compare=False)
    model_path: Path | None = field(default=None, compare=False)
    implicit: bool = field(default=False, compare=False)

    @property
    def notes(self) -> list[str]:
        """One line per effect the preset names but cannot play here (it plays without them)."""
        return [f"{self.name}: {e.missing}" for e in self.effects if e.missing]

    @property
    def slug(self) -> str:
        """The name as a file stem (`slug(name)`)."""
        return slug(self.name)

    def values(self, mode: str | None = None) -> dict[str, float]:
        """The instrument parameter values this preset sets for `mode` (default: its own mode)."""
        return dict(self.transfer if (mode or self.mode) == "transfer" else self.midi)


# Reading ----------------------------------------------------------------------------------

_parsed: dict[tuple[str, int, int, int], Preset] = {}
"""Presets parsed so far, by (path, mtime in ns, size, inode): a library lists every preset on
each look-up, and parsing TOML is most of that cost. A changed file has a new key."""


def read_preset(
    path: str | os.PathLike,
    factory: bool = False,
    model_dirs: Sequence[str | os.PathLike] | None = None,
    check_model: bool = True,
) -> Preset:
    """Read and validate a preset file; every fault is a one-line TimbrelError naming `path`.

    The model is looked up in `path`'s folder/models, then `model_dirs` (default: the user
    models folder, then the factory models folder). With `check_model` a missing model or a
    SHA-256 mismatch is a fault (hashes are cached by path, mtime and size); without it the
    model is only looked for, and `model_path` is None when it is not there.
    """
    path = Path(path)
    try:
        stat = os.stat(path)
        key = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
        parsed = _parsed.get(key)
        if parsed is None:
            data = path.read_bytes()
    except OSError as err:
        raise TimbrelError(f"{path}: cannot read the preset ({err.strerror or err})") from None
    if parsed is None:
        try:
            parsed = _parse_bytes(data)
        except PresetFault as fault:
            raise TimbrelError(one_line(f"{path}: {fault}")) from None
        _parsed[key] = parsed
    preset = copy.deepcopy(parsed)
    preset.path, preset.factory = path, bool(factory)
    folders = model_dirs_for(path, default_model_dirs() if model_dirs is None else model_dirs)
    preset.model_path = find_model(preset.model_file, folders)
    if check_model:
        _check_model(path, preset, folders)
    return preset


def parse_preset(text: str, where: str = "<preset>") -> Preset:
    """Validate preset TOML `text` (model not looked for); faults name `where`."""
    try:
        return _parse_bytes(text.encode("utf-8"))
    except PresetFault as fault:
        raise TimbrelError(one_line(f"{where}: {fault}")) from None


def _check_model(path: Path, preset: Preset, folders: list[Path]) -> None:
    if preset.model_path is None:
        raise TimbrelError(one_line(f"{path}: model file {preset.model_file!r} not found "
                                 f"(looked in {', '.join(map(str, folders))})"))
    try:
        actual = sha256_file(preset.model_path)
    except OSError as err:
        raise TimbrelError(f"{path}: cannot read model {preset.model_path} ({err.strerror or err})") from None
    if actual != preset.model_sha256:
        raise TimbrelError(f"{path}: model {preset.model_path} has sha256 {actual[:12]}… but the preset expects "
                           f"{preset.model_sha256[:12]}… (the model file was changed or replaced)")


def _parse_bytes(data: bytes) -> Preset:
    if b"\x00" in data:
        raise PresetFault("not a preset: binary data (a preset is a UTF-8 TOML text file)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PresetFault(f"not a preset: not UTF-8 text (bad byte at offset {err.start})") from None
    if not text.strip():
        raise PresetFault("empty file (a preset needs format = 1, [preset] and [model])")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise PresetFault(f"invalid TOML: {err}") from None
    return _parse_document(document)


def _parse_document(doc: dict) -> Preset:
    if "format" not in doc:
        raise PresetFault(f"missing 'format = {FORMAT}' at the top (is this a timbrel preset?)")
    version = doc["format"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise PresetFault(f"format must be the integer {FORMAT}, not {kind_of(version)}")
    if version != FORMAT:
        newer = " (it is newer than this timbrel)" if version > FORMAT else ""
        raise PresetFault(f"format {version} is not supported{newer}; this timbrel reads format {FORMAT}")
    known_keys(doc, _TOP, "the file")

    meta = table(doc, "preset", "[preset]", required=True)
    known_keys(meta, _PRESET, "[preset]")
    name = _string(meta, "name", "[preset]", required=True)
    try:
        name = check_name(name)
    except TimbrelError as err:
        raise PresetFault(f"[preset] {err}") from None
    category = _string(meta, "category", "[preset]", default="user")
    check_category(category, "[preset] category")
    tags = meta.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise PresetFault(f"[preset] tags must be a list of strings, as in tags = [\"bowed\", \"solo\"], not {kind_of(tags)}")
    tags = clean_tags(tags)

    model = table(doc, "model", "[model]", required=True)
    known_keys(model, _MODEL, "[model]")
    file = _string(model, "file", "[model]", required=True)
    if not file or Path(file).name != file or file in (".", ".."):
        raise PresetFault(f"[model] file must be a file name such as \"violin.onnx\", not a path: {shown(file)}")
    sha = _string(model, "sha256", "[model]", required=True).lower()
    if not _SHA256.fullmatch(sha):
        raise PresetFault(f"[model] sha256 must be 64 hex digits, got {shown(sha)}")

    instrument = table(doc, "instrument", "[instrument]")
    known_keys(instrument, _INSTRUMENT, "[instrument]")
    mode = _string(instrument, "mode", "[instrument]", default="midi")
    if mode not in MODES:
        raise PresetFault(f"[instrument] mode {mode!r} is not one of {', '.join(MODES)}")
    values = {m: parameter_values(table(instrument, m, f"[instrument.{m}]"), instrument_parameters(m), f"[instrument.{m}]")
              for m in MODES}
    learn = dict(learned(key, value, "[instrument.learn]") for key, value in table(instrument, "learn", "[instrument.learn]").items())

    effects = doc.get("effects", [])
    if not isinstance(effects, list) or not all(isinstance(e, dict) for e in effects):
        raise PresetFault(f"effects must be an array of tables ([[effects]] entries), not {kind_of(effects)}")
    chain = [_effect(entry, f"effects[{i}]") for i, entry in enumerate(effects)]

    recipe = table(doc, "recipe", "[recipe]")
    quality = table(doc, "quality", "[quality]")
    for key, value in quality.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PresetFault(f"[quality] {key} must be a number, not {kind_of(value)}")

    return Preset(name=name, model_file=file, model_sha256=sha, category=category, tags=tags,
                  description=_string(meta, "description", "[preset]", default=""),
                  author=_string(meta, "author", "[preset]", default=""),
                  licence=_string(meta, "licence", "[preset]", default=""),
                  mode=mode, midi=values["midi"], transfer=values["transfer"], effects=chain, learn=learn, recipe=recipe,
                  quality=dict(quality))


def _effect(entry: dict, where: str) -> EffectSettings:
    known_keys(entry, _EFFECT, where)
    kind = _string(entry, "type", where, required=True)
    where = f"{where} ({kind})"
    bypass = entry.get("bypass", False)
    if not isinstance(bypass, bool):
        raise PresetFault(f"{where} bypass must be true or false, not {kind_of(bypass)}")
    given = table(entry, "parameters", f"{where} parameters")
    try:
        declared = effect_parameters(kind, where)
    except LV2Unavailable as err:
        return EffectSettings(kind, dict(given), bypass, missing=f"{err}; it plays without this effect")
    return EffectSettings(kind, parameter_values(given, declared, f"{where} parameters"), bypass)


def learned(controller: object, parameter_id: object, where: str) -> tuple[int, str]:
    """A checked MIDI learn entry: controller (a number, or its digits as text) and parameter id."""
    text = str(controller).strip()
    if isinstance(controller, bool) or not text.isdigit() or not 0 <= int(text) <= 127 or int(text) in RESERVED_CC:
        raise PresetFault(f"{where} {shown(text)}: a controller number 0 to 127, except {RESERVED_CC_TEXT}")
    ids = [p.id for p in instrument_parameters("midi")]
    parameter_id = RENAMED_PARAMETERS.get(parameter_id, parameter_id) if isinstance(parameter_id, str) else parameter_id
    if parameter_id not in ids:
        raise PresetFault(f"{where} {text} = {shown(str(parameter_id))}: not a MIDI instrument parameter "
                          f"(parameters: {', '.join(ids)})")
    return int(text), parameter_id


def instrument_parameters(mode: str) -> tuple[Parameter, ...]:
    """The parameters of the instrument that plays `mode` ("midi" or "transfer")."""
    return TRANSFER_PARAMETERS if mode == "transfer" else MIDI_PARAMETERS


def effect_parameters(kind: str, where: str = "effect") -> tuple[Parameter, ...]:
    """The parameters an effect type declares (its class is imported, not instantiated).
    PresetFault for an unknown type; for an LV2 plugin not installed or not hostable, an
    `LV2Unavailable` error (one line, naming `where`)."""
    try:
        return tuple(effect_class(kind).parameters)
    except LV2Unavailable as err:
        raise type(err)(f"{where}: {err}") from None
    except TimbrelError as err:
        raise PresetFault(f"{where}: {err}") from None
    except Exception as err:  # an effect module that fails to import must not hide which preset needs it
        raise PresetFault(f"{where}: effect {kind!r} cannot be loaded ({type(err).__name__}: {err})") from None


RENAMED_PARAMETERS = {"loudness_db": "loudness_shift_db"}
"""Parameter ids of earlier timbrel versions -> today's, so that older preset files still load.
The MIDI instrument's loudness offset was `loudness_db`; transfer's was already `loudness_shift_db`."""


def parameter_values(table: dict, parameters: tuple[Parameter, ...], where: str, text: bool = False) -> dict[str, float]:
    """`table`'s values checked against `parameters` (ids -> values in their units); renamed ids
    (`RENAMED_PARAMETERS`) are read under today's id. Raises `PresetFault` naming `where`."""
    by_id = {p.id: p for p in parameters}
    values = {}
    for key, raw in table.items():
        if key not in by_id and RENAMED_PARAMETERS.get(key) in by_id:
            key = RENAMED_PARAMETERS[key]
        if key not in by_id:
            raise PresetFault(f"{where} has no parameter {key!r}{suggestion(key, by_id)} (parameters: {', '.join(by_id)})")
        values[key] = _parameter_value(by_id[key], raw, f"{where} {key}", text)
    return values


def _parameter_value(parameter: Parameter, raw: object, where: str, text: bool = False) -> float:
    """`raw` checked against `parameter`: a number in range, or a switch's choice name.

    With `text` a string may also spell a number (as typed on a command line). Raises
    `PresetFault` naming `where`, the value and the range or the choices.
    """
    choices = parameter.choices
    expected = (f"one of {', '.join(choices)} (or 0 to {len(choices) - 1})" if choices
                else f"a number from {parameter.range_text()}")
    value: float | None = None
    if isinstance(raw, str):
        folded = raw.strip().casefold()
        for index, choice in enumerate(choices):
            if choice.casefold() == folded:
                return float(index)
        if text:
            try:
                value = float(raw.strip())
            except ValueError:
                pass
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    if value is None:
        raise PresetFault(f"{where} = {shown(raw)}: expected {expected}")
    fault = parameter.fault(value)
    if fault is not None:
        raise PresetFault(f"{where} = {fault}")
    return value


def table(parent: dict, key: str, where: str, required: bool = False) -> dict:
    if key not in parent:
        if required:
            raise PresetFault(f"missing the {where} table")
        return {}
    value = parent[key]
    if not isinstance(value, dict):
        raise PresetFault(f"{where} must be a table, not {kind_of(value)}")
    return value


def _string(table: dict, key: str, where: str, required: bool = False, default: str = "") -> str:
    if key not in table:
        if required:
            raise PresetFault(f"{where} is missing {key!r}")
        return default
    value = table[key]
    if not isinstance(value, str):
        raise PresetFault(f"{where} {key} must be a string, not {kind_of(value)}")
    return value


def known_keys(table: dict, known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            raise PresetFault(f"{where} has an unknown key {key!r}{suggestion(key, known)} (known: {', '.join(known)})")


def check_category(category: str, where: str) -> None:
    if category not in CATEGORIES:
        raise PresetFault(f"{where} {shown(category)} is not one of {', '.join(CATEGORIES)}{suggestion(category, CATEGORIES)}")


def clean_tags(tags: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for tag in tags:
        tag = " ".join(tag.split())
        if tag and tag.casefold() not in (t.casefold() for t in seen):
            seen.append(tag)
    return seen


# Writing ----------------------------------------------------------------------------------


# Editing ----------------------------------------------------------------------------------


# Playing ----------------------------------------------------------------------------------


