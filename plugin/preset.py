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

    [instrument.midi]             # plugin.instrument.PARAMETERS ids → values, in their units
    gain_db = 0.0
    voice_mode = "legato"         # a switch may be given by choice name or index

    [instrument.transfer]         # plugin.transfer.PARAMETERS ids → values
    gate_db = -55.0

    [[effects]]                   # in signal order
    type = "eq"                   # a name for plugin.effects.create_effect
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
import difflib
import hashlib
import math
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from engine.errors import TimbrelError
from plugin.api import Parameter

if TYPE_CHECKING:
    from plugin.chain import Chain
    from plugin.model import TimbreModel

FORMAT = 1
CATEGORIES = ("strings", "woodwind", "brass", "reed", "voice", "synth", "user")
MODES = ("midi", "transfer")
MAX_NAME_CHARS = 64

_TOP = ("format", "preset", "model", "instrument", "effects", "recipe", "quality")
_PRESET = ("name", "category", "tags", "description", "author", "licence")
_MODEL = ("file", "sha256")
_INSTRUMENT = ("mode", "midi", "transfer")
_EFFECT = ("type", "bypass", "parameters")
_SETTINGS = ("mode", "category", "tags", "description", "author", "licence",
             "midi.PARAM", "transfer.PARAM", "effects.N.PARAM", "effects.TYPE.PARAM", "effects.N.bypass", "PARAM")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class EffectSettings:
    """One `[[effects]]` entry: the effect type, its parameter values (only those given), bypass."""

    type: str
    parameters: dict[str, float] = field(default_factory=dict)
    bypass: bool = False


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
    recipe: dict = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)
    factory: bool = field(default=False, compare=False)
    model_path: Path | None = field(default=None, compare=False)
    implicit: bool = field(default=False, compare=False)

    @property
    def slug(self) -> str:
        """The name as a file stem (`slug(name)`)."""
        return slug(self.name)

    def values(self, mode: str | None = None) -> dict[str, float]:
        """The instrument parameter values this preset sets for `mode` (default: its own mode)."""
        return dict(self.transfer if (mode or self.mode) == "transfer" else self.midi)


class _Fault(Exception):
    """A fault in a preset's contents, before the file's name is put in front of it."""


# Names, files, hashes ---------------------------------------------------------------------


def fold(text: str) -> str:
    """`text` case-folded with accents removed: how names, tags and queries are compared."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def slug(name: str) -> str:
    """The file stem for a preset name: lower case, accents dropped, runs of other characters as '-'.

    `slug("Alto Sax") == "alto-sax"`, `slug("Violon à cordes") == "violon-a-cordes"`.
    """
    return re.sub(r"[\W_]+", "-", fold(name)).strip("-")


def check_name(name: object) -> str:
    """`name` stripped, if usable as a preset name; else TimbrelError saying why."""
    if not isinstance(name, str):
        raise TimbrelError(f"a preset name must be text, not {_kind(name)}")
    stripped = name.strip()
    if not stripped:
        raise TimbrelError("a preset name cannot be empty")
    if len(stripped) > MAX_NAME_CHARS:
        raise TimbrelError(f"preset name {_show(stripped)} is longer than {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(c).startswith("C") for c in stripped):
        raise TimbrelError(f"preset name {_show(stripped)} contains control characters")
    if not slug(stripped):
        raise TimbrelError(f"preset name {_show(stripped)} needs at least one letter or digit")
    return stripped


_hashes: dict[tuple[str, int, int, int], str] = {}


def file_key(path: str | os.PathLike) -> tuple[str, int, int, int]:
    """(resolved path, mtime in ns, size in bytes, inode): changes whenever the file does."""
    path = Path(path).resolve()
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file as 64 lower-case hex digits, cached by `file_key`. Raises OSError."""
    key = file_key(path)
    if key not in _hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        _hashes[key] = digest.hexdigest()
    return _hashes[key]


def model_dirs_for(path: str | os.PathLike, model_dirs: Iterable[str | os.PathLike]) -> list[Path]:
    """Folders searched for a preset file's model, in order: its folder/models, then `model_dirs`."""
    found: list[Path] = []
    for folder in (Path(path).parent / "models", *map(Path, model_dirs)):
        if folder not in found:
            found.append(folder)
    return found


def find_model(file: str, folders: Iterable[Path]) -> Path | None:
    """The first `folder/file` that is a file, or None."""
    for folder in folders:
        if (folder / file).is_file():
            return folder / file
    return None


def _default_model_dirs() -> tuple[Path, ...]:
    from plugin.library import Library

    library = Library()
    return library.models_dir, library.factory_models_dir


# Reading ----------------------------------------------------------------------------------


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
        data = path.read_bytes()
    except OSError as err:
        raise TimbrelError(f"{path}: cannot read the preset ({err.strerror or err})") from None
    try:
        preset = _parse_bytes(data)
    except _Fault as fault:
        raise TimbrelError(_line(f"{path}: {fault}")) from None
    preset.path, preset.factory = path, bool(factory)
    folders = model_dirs_for(path, _default_model_dirs() if model_dirs is None else model_dirs)
    preset.model_path = find_model(preset.model_file, folders)
    if check_model:
        _check_model(path, preset, folders)
    return preset


def parse_preset(text: str, where: str = "<preset>") -> Preset:
    """Validate preset TOML `text` (model not looked for); faults name `where`."""
    try:
        return _parse_bytes(text.encode("utf-8"))
    except _Fault as fault:
        raise TimbrelError(_line(f"{where}: {fault}")) from None


def _check_model(path: Path, preset: Preset, folders: list[Path]) -> None:
    if preset.model_path is None:
        raise TimbrelError(_line(f"{path}: model file {preset.model_file!r} not found "
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
        raise _Fault("not a preset: binary data (a preset is a UTF-8 TOML text file)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Fault(f"not a preset: not UTF-8 text (bad byte at offset {err.start})") from None
    if not text.strip():
        raise _Fault("empty file (a preset needs format = 1, [preset] and [model])")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise _Fault(f"invalid TOML: {err}") from None
    return _parse_document(document)


def _parse_document(doc: dict) -> Preset:
    if "format" not in doc:
        raise _Fault(f"missing 'format = {FORMAT}' at the top (is this a timbrel preset?)")
    version = doc["format"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Fault(f"format must be the integer {FORMAT}, not {_kind(version)}")
    if version != FORMAT:
        newer = " (it is newer than this timbrel)" if version > FORMAT else ""
        raise _Fault(f"format {version} is not supported{newer}; this timbrel reads format {FORMAT}")
    _known_keys(doc, _TOP, "the file")

    meta = _table(doc, "preset", "[preset]", required=True)
    _known_keys(meta, _PRESET, "[preset]")
    name = _string(meta, "name", "[preset]", required=True)
    try:
        name = check_name(name)
    except TimbrelError as err:
        raise _Fault(f"[preset] {err}") from None
    category = _string(meta, "category", "[preset]", default="user")
    _check_category(category, "[preset] category")
    tags = meta.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _Fault(f"[preset] tags must be a list of strings, as in tags = [\"bowed\", \"solo\"], not {_kind(tags)}")
    tags = _clean_tags(tags)

    model = _table(doc, "model", "[model]", required=True)
    _known_keys(model, _MODEL, "[model]")
    file = _string(model, "file", "[model]", required=True)
    if not file or Path(file).name != file or file in (".", ".."):
        raise _Fault(f"[model] file must be a file name such as \"violin.onnx\", not a path: {_show(file)}")
    sha = _string(model, "sha256", "[model]", required=True).lower()
    if not _SHA256.fullmatch(sha):
        raise _Fault(f"[model] sha256 must be 64 hex digits, got {_show(sha)}")

    instrument = _table(doc, "instrument", "[instrument]")
    _known_keys(instrument, _INSTRUMENT, "[instrument]")
    mode = _string(instrument, "mode", "[instrument]", default="midi")
    if mode not in MODES:
        raise _Fault(f"[instrument] mode {mode!r} is not one of {', '.join(MODES)}")
    values = {m: _parameters(_table(instrument, m, f"[instrument.{m}]"), instrument_parameters(m), f"[instrument.{m}]")
              for m in MODES}

    effects = doc.get("effects", [])
    if not isinstance(effects, list) or not all(isinstance(e, dict) for e in effects):
        raise _Fault(f"effects must be an array of tables ([[effects]] entries), not {_kind(effects)}")
    chain = [_effect(entry, f"effects[{i}]") for i, entry in enumerate(effects)]

    recipe = _table(doc, "recipe", "[recipe]")
    quality = _table(doc, "quality", "[quality]")
    for key, value in quality.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Fault(f"[quality] {key} must be a number, not {_kind(value)}")

    return Preset(name=name, model_file=file, model_sha256=sha, category=category, tags=tags,
                  description=_string(meta, "description", "[preset]", default=""),
                  author=_string(meta, "author", "[preset]", default=""),
                  licence=_string(meta, "licence", "[preset]", default=""),
                  mode=mode, midi=values["midi"], transfer=values["transfer"], effects=chain, recipe=recipe,
                  quality=dict(quality))


def _effect(entry: dict, where: str) -> EffectSettings:
    _known_keys(entry, _EFFECT, where)
    kind = _string(entry, "type", where, required=True)
    where = f"{where} ({kind})"
    bypass = entry.get("bypass", False)
    if not isinstance(bypass, bool):
        raise _Fault(f"{where} bypass must be true or false, not {_kind(bypass)}")
    parameters = _parameters(_table(entry, "parameters", f"{where} parameters"), effect_parameters(kind, where),
                             f"{where} parameters")
    return EffectSettings(kind, parameters, bypass)


def instrument_parameters(mode: str) -> tuple[Parameter, ...]:
    """The parameters of the instrument that plays `mode` ("midi" or "transfer")."""
    if mode == "transfer":
        from plugin.transfer import PARAMETERS
    else:
        from plugin.instrument import PARAMETERS
    return PARAMETERS


def effect_parameters(kind: str, where: str = "effect") -> tuple[Parameter, ...]:
    """The parameters an effect type declares (its class is imported, not instantiated)."""
    from plugin.effects import effect_class

    try:
        return tuple(effect_class(kind).parameters)
    except TimbrelError as err:
        raise _Fault(f"{where}: {err}") from None
    except Exception as err:  # an effect module that fails to import must not hide which preset needs it
        raise _Fault(f"{where}: effect {kind!r} cannot be loaded ({type(err).__name__}: {err})") from None


def _parameters(table: dict, parameters: tuple[Parameter, ...], where: str, text: bool = False) -> dict[str, float]:
    by_id = {p.id: p for p in parameters}
    values = {}
    for key, raw in table.items():
        if key not in by_id:
            raise _Fault(f"{where} has no parameter {key!r}{_suggest(key, by_id)} (parameters: {', '.join(by_id)})")
        values[key] = _parameter_value(by_id[key], raw, f"{where} {key}", text)
    return values


def _parameter_value(parameter: Parameter, raw: object, where: str, text: bool = False) -> float:
    """`raw` checked against `parameter`: a number in range, or a switch's choice name.

    With `text` a string may also spell a number (as typed on a command line). Raises
    `_Fault` naming `where`, the value and the range or the choices.
    """
    choices = parameter.choices
    expected = (f"one of {', '.join(choices)} (or 0 to {len(choices) - 1})" if choices
                else f"a number from {_range(parameter)}")
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
        raise _Fault(f"{where} = {_show(raw)}: expected {expected}")
    if not math.isfinite(value):
        raise _Fault(f"{where} = {_show(raw)} is not a finite number ({_range(parameter)})")
    if not parameter.minimum <= value <= parameter.maximum:
        raise _Fault(f"{where} = {value:g} is out of range ({_range(parameter)})")
    if choices and value != round(value):
        raise _Fault(f"{where} = {value:g}: expected {expected}")
    return value


def _range(parameter: Parameter) -> str:
    unit = f" {parameter.unit}" if parameter.unit else ""
    return f"{parameter.minimum:g} to {parameter.maximum:g}{unit}"


def _table(parent: dict, key: str, where: str, required: bool = False) -> dict:
    if key not in parent:
        if required:
            raise _Fault(f"missing the {where} table")
        return {}
    value = parent[key]
    if not isinstance(value, dict):
        raise _Fault(f"{where} must be a table, not {_kind(value)}")
    return value


def _string(table: dict, key: str, where: str, required: bool = False, default: str = "") -> str:
    if key not in table:
        if required:
            raise _Fault(f"{where} is missing {key!r}")
        return default
    value = table[key]
    if not isinstance(value, str):
        raise _Fault(f"{where} {key} must be a string, not {_kind(value)}")
    return value


def _known_keys(table: dict, known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            raise _Fault(f"{where} has an unknown key {key!r}{_suggest(key, known)} (known: {', '.join(known)})")


def _check_category(category: str, where: str) -> None:
    if category not in CATEGORIES:
        raise _Fault(f"{where} {_show(category)} is not one of {', '.join(CATEGORIES)}{_suggest(category, CATEGORIES)}")


def _clean_tags(tags: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for tag in tags:
        tag = " ".join(tag.split())
        if tag and tag.casefold() not in (t.casefold() for t in seen):
            seen.append(tag)
    return seen


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return f"true/false ({str(value).lower()})"
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a table"}
    for cls, word in names.items():
        if isinstance(value, cls):
            return f"{word} ({_show(value)})" if cls in (str, int, float) else word
    return type(value).__name__


def _show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line(message: str) -> str:
    return " ".join(message.splitlines())


# Writing ----------------------------------------------------------------------------------


def preset_to_toml(preset: Preset) -> str:
    """The preset as format-1 TOML text; `parse_preset(preset_to_toml(p)) == p` for a valid `p`."""
    head = {
        "format": FORMAT,
        "preset": {"name": preset.name, "category": preset.category, "tags": list(preset.tags),
                   "description": preset.description, "author": preset.author, "licence": preset.licence},
        "model": {"file": preset.model_file, "sha256": preset.model_sha256},
        "instrument": {"mode": preset.mode},
    }
    for mode in MODES:
        values = preset.values(mode)
        if values:
            head["instrument"][mode] = _written(values, instrument_parameters(mode))
    chunks = [f"# timbrel preset, format {FORMAT} (see plugin/preset.py)\n", tomli_w.dumps(head)]
    for effect in preset.effects:
        chunks.append("\n[[effects]]\n" + tomli_w.dumps({"type": effect.type, "bypass": bool(effect.bypass)}))
        if effect.parameters:
            try:
                parameters = effect_parameters(effect.type)
            except _Fault as fault:
                raise TimbrelError(_line(f"{preset.name}: {fault}")) from None
            chunks.append("\n[effects.parameters]\n" + tomli_w.dumps(_written(effect.parameters, parameters)))
    tail = {key: value for key, value in (("recipe", preset.recipe), ("quality", preset.quality)) if value}
    if tail:
        try:
            chunks.append("\n" + tomli_w.dumps(tail))
        except TypeError as err:
            raise TimbrelError(f"{preset.name}: [recipe] or [quality] holds a value TOML cannot store "
                               f"({err})") from None
    return "".join(chunks)


def _written(values: Mapping[str, float], parameters: tuple[Parameter, ...]) -> dict[str, float | str]:
    """Values for a file: switches by choice name, numbers as floats."""
    by_id = {p.id: p for p in parameters}
    out: dict[str, float | str] = {}
    for key, value in values.items():
        parameter = by_id.get(key)
        if parameter is not None and parameter.choices and float(value).is_integer() \
                and 0 <= int(value) < len(parameter.choices):
            out[key] = parameter.choices[int(value)]
        else:
            out[key] = float(value)
    return out


# Editing ----------------------------------------------------------------------------------


def apply_settings(preset: Preset, settings: Mapping[str, object]) -> Preset:
    """A copy of `preset` with `settings` applied, each checked as a preset file's value would be.

    Keys: `mode`, `category`, `description`, `author`, `licence`, `tags` (a comma list),
    `midi.PARAM`, `transfer.PARAM`, `effects.N.PARAM` or `effects.KEY.PARAM` (N counts from 0;
    KEY is the effect type, `type-2` for its second one, as chain keys go), `effects.N.bypass`
    (true/false, on/off, yes/no, 1/0), and a bare `PARAM` for the instrument of the preset's
    mode (after any `mode` setting). Values may be strings as typed on a command line.
    """
    new = copy.deepcopy(replace(preset, path=None, factory=False, implicit=False))
    for key, raw in sorted(settings.items(), key=lambda item: item[0].strip() != "mode"):
        try:
            _apply(new, key.strip(), raw)
        except _Fault as fault:
            raise TimbrelError(_line(f"setting {key}={_text(raw)}: {fault}")) from None
    return new


def _apply(preset: Preset, key: str, raw: object) -> None:
    if key in ("description", "author", "licence", "mode", "category"):
        if not isinstance(raw, str):
            raise _Fault(f"expected text, not {_kind(raw)}")
        value = raw.strip()
        if key == "mode" and value not in MODES:
            raise _Fault(f"mode must be one of {', '.join(MODES)}")
        if key == "category":
            _check_category(value, "category")
        setattr(preset, key, value)
        return
    if key == "tags":
        tags = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
            raise _Fault("tags must be a comma-separated list, as in tags=bowed,solo")
        preset.tags = _clean_tags(tags)
        return
    parts = key.split(".")
    if len(parts) == 1 and parts[0] not in (p.id for p in instrument_parameters(preset.mode)):
        known = ", ".join(p.id for p in instrument_parameters(preset.mode))
        raise _Fault(f"unknown setting {key!r} (settings: {', '.join(_SETTINGS)}; "
                     f"PARAM of the {preset.mode} instrument: {known})")
    if len(parts) == 1 or (len(parts) == 2 and parts[0] in MODES):
        mode, parameter_id = (preset.mode, parts[0]) if len(parts) == 1 else parts
        values = preset.transfer if mode == "transfer" else preset.midi
        values.update(_parameters({parameter_id: raw}, instrument_parameters(mode), f"[instrument.{mode}]", text=True))
        return
    if len(parts) == 3 and parts[0] == "effects":
        effect = _effect_at(preset, parts[1])
        if parts[2] == "bypass":
            effect.bypass = _boolean(raw)
        else:
            where = f"effects.{parts[1]} ({effect.type})"
            parameters = effect_parameters(effect.type, where)
            effect.parameters.update(_parameters({parts[2]: raw}, parameters, where, text=True))
        return
    raise _Fault(f"unknown setting {key!r} (settings: {', '.join(_SETTINGS)})")


def _effect_at(preset: Preset, which: str) -> EffectSettings:
    keys = effect_keys(preset)
    if which.isdigit():
        if int(which) < len(preset.effects):
            return preset.effects[int(which)]
        raise _Fault(f"no effect {which}: the preset has {len(preset.effects)} (numbered from 0)")
    if which in keys:
        return preset.effects[keys.index(which)]
    raise _Fault(f"the preset has no effect {which!r} (effects: {', '.join(keys) or 'none'})")


def effect_keys(preset: Preset) -> list[str]:
    """Each effect's key as a chain names it: its type, then `type-2`, `type-3` for repeats."""
    from plugin.chain import slot_key

    keys: list[str] = []
    for effect in preset.effects:
        keys.append(slot_key(effect.type, keys))
    return keys


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    words = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}
    if isinstance(raw, str) and raw.strip().casefold() in words:
        return words[raw.strip().casefold()]
    raise _Fault("expected true or false")


def _text(raw: object) -> str:
    return raw if isinstance(raw, str) else repr(raw)


# Playing ----------------------------------------------------------------------------------


def model_path(preset: Preset) -> Path:
    """The preset's model file; TimbrelError naming the preset when it was not found."""
    if preset.model_path is None:
        raise TimbrelError(f"{preset.path or preset.name}: model file {preset.model_file!r} was not found")
    return preset.model_path


def build_chain(preset: Preset, mode: str | None = None, voices: int = 16, model: TimbreModel | None = None) -> Chain:
    """The preset ready to play: its instrument for `mode` (default: the preset's) with the
    preset's values set and snapped, followed by its effects in order, bypass applied. A
    `reverb` effect plays the room of the preset's own model.

    `voices` (1 to 64) applies to the MIDI instrument. `model` reuses a loaded model instead
    of loading `preset.model_path`.
    """
    from plugin.chain import Chain
    from plugin.effects import create_effect
    from plugin.model import load_model

    mode = mode or preset.mode
    if mode not in MODES:
        raise TimbrelError(f"{preset.name}: mode {mode!r} is not one of {', '.join(MODES)}")
    if model is None:
        model = load_model(model_path(preset))
    if mode == "midi":
        from plugin.instrument import MidiInstrument

        instrument = MidiInstrument(model, voices=voices)
    else:
        from plugin.transfer import TimbreTransfer

        instrument = TimbreTransfer(model)
    for key, value in preset.values(mode).items():
        instrument.params.set(key, value)
    instrument.params.snap()
    chain = Chain(instrument, [create_effect(e.type, e.parameters, **({"model": model} if e.type == "reverb" else {}))
                               for e in preset.effects])
    for index, effect in enumerate(preset.effects):
        if effect.bypass:
            chain.bypass(index)
    return chain
