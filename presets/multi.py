"""The multi file: an ensemble of up to 16 parts, each a preset, in one TOML file.

Format 1 (every table but `[multi]` and one `[[parts]]` may be left out):

    format = 1

    [multi]
    name = "String Quartet"
    description = "..."

    [reverb]                      # the shared reverb send bus: a model's learned room
    room = "cello"                # a preset whose model's room it plays; no [reverb]: no reverb bus
    wet_db = 0.0                  # the learned reverb's parameters (mix is 1: a send bus is all wet)

    [delay]                       # the shared delay send bus; its parameters (time_ms, feedback, ...)
    time_ms = 375.0

    [[parts]]
    preset = "violin"             # a preset name, or a .toml file relative to this one
    voices = 8                    # 1 to 64 (default 8)
    midi_channel = 1              # and any of timbrel.plugin.ensemble.PART_PARAMETERS:
    key_low = 55                  # key and velocity ranges, transpose, volume_db, pan,
    volume_db = -3.0              # mute, solo, reverb_send, delay_send
    [parts.set]                   # the preset changed for this part, in the --set grammar
    gain_db = -2.0

    [[parts]]
    [parts.embed]                 # a whole preset written here instead of `preset`
    format = 1
    [parts.embed.preset]
    ...

Every fault is a `TimbrelError` of one line naming the file, the part and what is wrong.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import tomli_w

from timbrel.engine.atomic import atomic_path
from timbrel.engine.errors import TimbrelError
from timbrel.plugin.effects import create_effect
from timbrel.plugin.effects.delay import Delay
from timbrel.plugin.effects.reverb import LearnedReverb
from timbrel.plugin.ensemble import MAX_PARTS, PART_PARAMETERS, Ensemble, Part
from timbrel.plugin.instrument import MAX_VOICES
from timbrel.presets.build import build_chain
from timbrel.presets.faults import PresetFault, kind_of, one_line
from timbrel.presets.library import Library
from timbrel.presets.model_files import find_model, model_path
from timbrel.presets.names import check_name, slug
from timbrel.presets.preset import Preset, known_keys, parameter_values, parse_preset, table
from timbrel.presets.settings import apply_settings
from timbrel.presets.writing import preset_to_toml

FORMAT = 1
DEFAULT_VOICES = 8
WHOLE_SETTINGS = ("midi_channel", "key_low", "key_high", "velocity_low", "velocity_high", "transpose")
"""Part settings that are MIDI numbers or semitones: whole numbers only."""
_TOP = ("format", "multi", "reverb", "delay", "parts")
_MULTI = ("name", "description")
_PART = ("preset", "embed", "voices", "set", *(p.id for p in PART_PARAMETERS))
_REVERB_PARAMETERS = tuple(p for p in LearnedReverb.parameters if p.id != "mix")
_DELAY_PARAMETERS = tuple(p for p in Delay.parameters if p.id != "mix")
"""A send bus is all wet: its effect's mix is 1, and the parts' sends set how much goes in."""


@dataclass
class PartSpec:
    """One `[[parts]]` entry: the preset (by name, or `embedded`), voices, the part's settings
    (`PART_PARAMETERS` ids → values given) and `changes` to the preset (`--set` grammar)."""

    preset: str = ""
    embedded: Preset | None = None
    voices: int = DEFAULT_VOICES
    settings: dict[str, float] = field(default_factory=dict)
    changes: dict[str, object] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """The part's preset name, for lists and errors."""
        return self.embedded.name if self.embedded is not None else self.preset


@dataclass
class Multi:
    """A multi's contents, and the file it came from (`path`, not compared)."""

    name: str
    parts: list[PartSpec]
    description: str = ""
    room: str = ""
    """The preset whose model's room the reverb bus plays ("": no reverb bus)."""
    reverb: dict[str, float] = field(default_factory=dict)
    delay: dict[str, float] | None = None
    """The delay bus's parameter values, or None for no delay bus."""
    path: Path | None = field(default=None, compare=False)


def read_multi(path: str | os.PathLike) -> Multi:
    """Read and validate a multi file; every fault is a one-line TimbrelError naming `path`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TimbrelError(f"{path}: cannot read the multi ({err.strerror or err})") from None
    multi = parse_multi(data, str(path))
    multi.path = path
    return multi


def parse_multi(data: bytes | str, where: str = "<multi>") -> Multi:
    """Validate multi TOML `data`; faults are one-line TimbrelErrors naming `where`."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if "\x00" in text:
            raise PresetFault("not a multi: binary data (a multi is a UTF-8 TOML text file)")
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise PresetFault(f"invalid TOML: {err}") from None
        return _parse_document(document, where)
    except UnicodeDecodeError as err:
        raise TimbrelError(f"{where}: not a multi: not UTF-8 text (bad byte at offset {err.start})") from None
    except PresetFault as fault:
        raise TimbrelError(one_line(f"{where}: {fault}")) from None


def _parse_document(doc: dict, where: str) -> Multi:
    version = doc.get("format")
    if version != FORMAT or isinstance(version, bool):
        raise PresetFault(f"expected 'format = {FORMAT}' at the top, not {kind_of(version) if version is not None else 'nothing'}")
    known_keys(doc, _TOP, "the file")
    meta = table(doc, "multi", "[multi]", required=True)
    known_keys(meta, _MULTI, "[multi]")
    if "name" not in meta:
        raise PresetFault("[multi] needs a name")
    try:
        name = check_name(meta["name"])
    except TimbrelError as err:
        raise PresetFault(f"[multi] {err}") from None
    description = meta.get("description", "")
    if not isinstance(description, str):
        raise PresetFault(f"[multi] description must be a string, not {kind_of(description)}")
    room, reverb = "", {}
    if "reverb" in doc:
        bus = dict(table(doc, "reverb", "[reverb]"))
        room = bus.pop("room", "")
        if not isinstance(room, str) or not room.strip():
            raise PresetFault("[reverb] needs room = a preset name (whose model's room the bus plays)")
        reverb = parameter_values(bus, _REVERB_PARAMETERS, "[reverb]")
    delay = parameter_values(table(doc, "delay", "[delay]"), _DELAY_PARAMETERS, "[delay]") if "delay" in doc else None
    entries = doc.get("parts")
    if not isinstance(entries, list) or not entries:
        raise PresetFault("no [[parts]]: a multi has 1 to 16 parts")
    if len(entries) > MAX_PARTS:
        raise PresetFault(f"{len(entries)} parts: a multi has at most {MAX_PARTS}")
    parts = [_part(entry, i + 1, where) for i, entry in enumerate(entries)]
    return Multi(name=name.strip(), parts=parts, description=description, room=room.strip(), reverb=reverb, delay=delay)


def _part(entry: object, number: int, where: str) -> PartSpec:
    label = f"part {number}"
    if not isinstance(entry, dict):
        raise PresetFault(f"{label} must be a table, not {kind_of(entry)}")
    known_keys(entry, _PART, label)
    spec = PartSpec()
    if ("preset" in entry) == ("embed" in entry):
        raise PresetFault(f"{label} needs either preset = a name or an [parts.embed] preset, not both or neither")
    if "preset" in entry:
        if not isinstance(entry["preset"], str) or not entry["preset"].strip():
            raise PresetFault(f"{label} preset must be a preset name, not {kind_of(entry['preset'])}")
        spec.preset = entry["preset"].strip()
    else:
        embed = table(entry, "embed", f"{label} embed")
        try:
            spec.embedded = parse_preset(tomli_w.dumps(embed), f"{label} embed")
        except TimbrelError as err:
            raise PresetFault(str(err)) from None
    voices = entry.get("voices", DEFAULT_VOICES)
    if not isinstance(voices, int) or isinstance(voices, bool) or not 1 <= voices <= MAX_VOICES:
        raise PresetFault(f"{label} voices = {voices!r}: expected a whole number from 1 to {MAX_VOICES}")
    spec.voices = voices
    spec.settings = parameter_values({k: v for k, v in entry.items() if k not in ("preset", "embed", "voices", "set")},
                                     PART_PARAMETERS, label)
    for key in WHOLE_SETTINGS:
        if key in spec.settings and not float(spec.settings[key]).is_integer():
            raise PresetFault(f"{label} {key} = {spec.settings[key]:g}: expected a whole number")
    if spec.settings.get("key_low", 0) > spec.settings.get("key_high", 127):
        raise PresetFault(f"{label}: key_low is above key_high")
    if spec.settings.get("velocity_low", 1) > spec.settings.get("velocity_high", 127):
        raise PresetFault(f"{label}: velocity_low is above velocity_high")
    spec.changes = dict(table(entry, "set", f"{label} set"))
    return spec


def multi_to_toml(multi: Multi) -> str:
    """The multi as format-1 TOML text (`read_multi` reads it back equal)."""
    doc: dict = {"format": FORMAT, "multi": {"name": multi.name}}
    if multi.description:
        doc["multi"]["description"] = multi.description
    if multi.room:
        doc["reverb"] = {"room": multi.room, **multi.reverb}
    if multi.delay is not None:
        doc["delay"] = dict(multi.delay)
    parts = []
    for spec in multi.parts:
        entry: dict = {}
        if spec.embedded is not None:
            entry["embed"] = tomllib.loads(preset_to_toml(spec.embedded))
        else:
            entry["preset"] = spec.preset
        entry["voices"] = spec.voices
        entry.update(spec.settings)
        if spec.changes:
            entry["set"] = dict(spec.changes)
        parts.append(entry)
    doc["parts"] = parts
    return tomli_w.dumps(doc)


def write_multi(multi: Multi, path: str | os.PathLike) -> Path:
    """Write `multi` to `path` atomically (the old file stays whole until the new one is)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(multi_to_toml(multi), encoding="utf-8")
    return path


def part_preset(spec: PartSpec, library: Library, where: str = "") -> Preset:
    """The preset a part plays, its changes applied; a one-line error naming the multi and part."""
    try:
        preset = spec.embedded if spec.embedded is not None else library.get(_relative(spec.preset, where))
        if spec.embedded is not None and preset.model_path is None:
            preset.model_path = _embedded_model(preset, library)
        return apply_settings(preset, spec.changes) if spec.changes else preset
    except TimbrelError as err:
        raise TimbrelError(one_line(f"{where or 'multi'}: part '{spec.title}': {err}")) from None


def _relative(name: str, where: str) -> str:
    """A preset named by a `.toml` path relative to the multi file is read from beside it."""
    if name.endswith(".toml") and where and not Path(name).is_absolute():
        beside = Path(where).parent / name
        if beside.is_file():
            return str(beside)
    return name


def _embedded_model(preset: Preset, library: Library) -> Path:
    found = find_model(preset.model_file, list(library.model_dirs))
    if found is None:
        raise TimbrelError(f"model file {preset.model_file!r} not found")
    return found


def build_ensemble(multi: Multi, library: Library | None = None, models=None, seed: int = 0) -> Ensemble:
    """The multi ready to play: each part's preset as a chain (MIDI mode), its settings applied,
    the send buses made. `models` (a `timbrel.model_cache.ModelCache`-like object with
    `get(path, sha256)`) reuses loaded models. Faults are one-line TimbrelErrors."""
    library = library or Library()
    where = str(multi.path) if multi.path else multi.name
    parts = []
    for number, spec in enumerate(multi.parts, 1):
        preset = part_preset(spec, library, where)
        model = models.get(model_path(preset), preset.model_sha256) if models is not None else None
        chain = build_chain(preset, "midi", voices=spec.voices, model=model)
        try:
            parts.append(Part(chain, preset.name, **spec.settings))
        except TimbrelError as err:
            raise TimbrelError(one_line(f"{where}: part {number}: {err}")) from None
    reverb = None
    if multi.room:
        room = part_preset(PartSpec(preset=multi.room), library, where)
        reverb = create_effect("reverb", {"mix": 1.0, **multi.reverb}, model=model_path(room))
    delay = create_effect("delay", {"mix": 1.0, **multi.delay}) if multi.delay is not None else None
    try:
        return Ensemble(parts, reverb=reverb, delay=delay, seed=seed)
    except TimbrelError as err:
        raise TimbrelError(one_line(f"{where}: {err}")) from None


def multi_dirs(library: Library) -> tuple[Path, Path]:
    """Where multis live: the factory's (read-only), then the user's (written by `save_multi`)."""
    return library.factory_dir / "multis", library.user_dir / "multis"


def list_multis(library: Library) -> tuple[list[Multi], list[str]]:
    """Every valid multi, factory first, each folder by name; and one line per file that could not be read."""
    found, problems = [], []
    for folder in multi_dirs(library):
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            try:
                found.append(read_multi(path))
            except TimbrelError as err:
                problems.append(str(err))
    return found, problems


def get_multi(library: Library, name: str) -> Multi:
    """The multi `name` (a name, its slug, or a `.toml` file); a one-line error naming the choices."""
    path = Path(name).expanduser()
    if path.suffix.lower() == ".toml":
        return read_multi(path)
    multis, _ = list_multis(library)
    for multi in reversed(multis):
        if slug(multi.name) == slug(name):
            return multi
    known = ", ".join(m.name for m in multis) or "none"
    raise TimbrelError(f"no multi {name!r} (multis: {known})")


def save_multi(library: Library, multi: Multi, force: bool = False) -> Path:
    """Write `multi` into the user's multis folder as `<slug>.toml`, atomically; an existing one
    is replaced only with `force`, and a factory multi's name only by another name."""
    factory, user = multi_dirs(library)
    target = user / f"{slug(multi.name)}.toml"
    if (factory / target.name).is_file() and not force:
        raise TimbrelError(f"{multi.name}: a factory multi has that name; choose another (or --force to shadow it)")
    if target.exists() and not force:
        raise TimbrelError(f"{target}: already exists (use --force to replace it)")
    user.mkdir(parents=True, exist_ok=True)
    return write_multi(multi, target)


def remove_multi(library: Library, name: str) -> Path:
    """Delete the user's multi `name`; factory multis cannot be removed."""
    target = multi_dirs(library)[1] / f"{slug(name)}.toml"
    if not target.is_file():
        raise TimbrelError(f"no user multi {name!r} in {target.parent}")
    target.unlink()
    return target
