"""Where presets come from: the read-only factory presets, and the user's own.

    library = Library()
    presets, problems = library.scan()
    chain = build_chain(library.get("violin"))
    library.search("warm brass")
    library.derive("Violin", "Soft Violin", {"gain_db": "-6", "effects.reverb.mix": "0.5"})

Factory presets are `presets/factory/*.toml` in the package, playing models in `presets/factory/models/`.
The user's live in `platformdirs.user_data_dir("timbrel")`: `presets/*.toml` and
`models/*.onnx`. A model dropped into the user models folder that no preset names lists as
an implicit user preset named after the file. A bad file costs one problem line naming it
and the fault, and never hides the other presets.

Every write is atomic and durable (a temporary file beside the target, fsync, rename, then
fsync of the folder), and nothing is overwritten without `force`. Factory presets are never
written, renamed or removed.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from timbrel.engine.atomic import atomic_path
from timbrel.engine.errors import TimbrelError
from timbrel.plugin.model import load_model
from timbrel.presets import factory_dir as shipped_factory_dir
from timbrel.presets.folders import (
    default_user_dir,
    factory_models_dir,
    user_models_dir,
)
from timbrel.presets.model_files import (
    file_key,
    find_model,
    model_dirs_for,
    sha256_file,
)
from timbrel.presets.names import check_name, fold, slug
from timbrel.presets.preset import CATEGORIES, Preset, parse_preset, read_preset
from timbrel.presets.search import matching, search_presets
from timbrel.presets.settings import apply_settings
from timbrel.presets.writing import preset_to_toml

_model_checks: dict[tuple[str, int, int, int], str] = {}
"""`load_model` verdicts on implicit models by `file_key`: "" when valid, else the fault line."""


@dataclass
class _Scan:
    presets: list[Preset]
    problems: list[tuple[Path, str]]


class Library:
    """The factory presets (read-only) and the user's presets and models.

    `factory_dir` holds `*.toml` and `models/*.onnx` (default: the `presets` package);
    `user_dir` holds `presets/*.toml` and `models/*.onnx` (default: `default_user_dir()`).
    Folders are created on the first write. Every call reads the folders afresh; model
    hashes and checks are cached by path, mtime and size, so that stays cheap.
    """

    def __init__(self, factory_dir: str | os.PathLike | None = None, user_dir: str | os.PathLike | None = None):
        self.factory_dir = Path(factory_dir) if factory_dir is not None else shipped_factory_dir()
        self.user_dir = Path(user_dir) if user_dir is not None else default_user_dir()

    @property
    def presets_dir(self) -> Path:
        """Where user presets are written."""
        return self.user_dir / "presets"

    @property
    def models_dir(self) -> Path:
        """Where user models live (imported, or dropped in by hand)."""
        return user_models_dir(self.user_dir)

    @property
    def factory_models_dir(self) -> Path:
        """Where the factory presets' models live (read-only)."""
        return factory_models_dir(self.factory_dir)

    @property
    def model_dirs(self) -> tuple[Path, Path]:
        """Searched for a preset's model after the preset file's own folder/models."""
        return self.models_dir, self.factory_models_dir

    # Reading ------------------------------------------------------------------------------

    def scan(self) -> tuple[list[Preset], list[str]]:
        """Every valid preset (factory, then user, then implicit ones from bare user models),
        and one line per file that could not be used, naming it and the fault."""
        scan = self._scan()
        return scan.presets, [line for _, line in scan.problems]

    def get(self, name: str) -> Preset:
        """The preset called `name`, by name or slug, ignoring case and accents; a TimbrelError
        naming close matches when there is none. A path to a `.toml` preset file reads that file;
        a path to any other file is taken as a model, played with default settings."""
        path = Path(name).expanduser()
        if path.suffix.lower() == ".toml" and path.is_file():
            return read_preset(path, model_dirs=(path.parent / "models", *self.model_dirs))
        if path.is_file() or path.suffix.lower() == ".onnx":
            if not path.is_file():
                raise TimbrelError(f"{path}: no such model file")
            return self._implicit(path)
        return self._find(self._scan(), name)

    def list(self, category: str | None = None, tag: str | None = None) -> list[Preset]:
        """The valid presets of `category` and carrying `tag` (case-insensitive) when given: factory
        presets first, then the user's, each by category (in `CATEGORIES` order) and name. MIDI
        program change N selects the Nth of the full list."""
        if category is not None and category not in CATEGORIES:
            raise TimbrelError(f"no category {category!r} (categories: {', '.join(CATEGORIES)})")
        found = matching(self._scan().presets, category, tag)
        rank = {c: i for i, c in enumerate(CATEGORIES)}
        return sorted(found, key=lambda p: (not p.factory, rank.get(p.category, len(rank)), fold(p.name)))

    def search(self, query: str) -> list[Preset]:
        """Presets matching every word of `query`, best first (an empty query lists them all).

        A query word matches a word of a preset's name, tags, category or description that
        equals it, starts with it, contains it (3 letters or more) or is similar to it (difflib
        ratio ≥ `FUZZY_RATIO`, so "violn" finds violin). Ranking: the exact name first, then
        presets matching more query words in their name, then by score (name over tags and
        category over description; equal over prefix over substring over similar).
        """
        return search_presets(self._scan().presets, query)

    def _scan(self) -> _Scan:
        presets: list[Preset] = []
        problems: list[tuple[Path, str]] = []
        by_slug: dict[str, Preset] = {}
        referenced: set[Path] = set()
        named: set[str] = set()

        def add(preset: Preset, source: Path) -> None:
            other = by_slug.get(preset.slug)
            if other is not None:
                kind = "factory" if other.factory else "user"
                advice = ("import it under another name" if preset.implicit
                          else "rename one of them (the name gives the file name)")
                line = f"{source}: name {preset.name!r} is taken by {kind} preset {other.path}; {advice}"
                problems.append((source, line))
                return
            by_slug[preset.slug] = preset
            presets.append(preset)

        for folder, factory in ((self.factory_dir, True), (self.presets_dir, False)):
            for path in _files(folder, ".toml"):
                try:
                    preset = read_preset(path, factory=factory, model_dirs=self.model_dirs)
                except TimbrelError as err:
                    problems.append((path, str(err)))
                    if not factory:
                        named.update(self._model_named_by(path))
                    continue
                if preset.model_path is not None:
                    referenced.add(preset.model_path.resolve())
                if not factory:
                    named.add(preset.model_file)
                add(preset, path)

        for path in _files(self.models_dir, ".onnx"):
            if path.name in named or path.resolve() in referenced:
                continue
            try:
                preset = self._implicit(path)
            except TimbrelError as err:
                problems.append((path, str(err)))
                continue
            add(preset, path)
        return _Scan(presets, problems)

    def _model_named_by(self, path: Path) -> set[str]:
        """The model file a preset that failed its model check names (so its model is not listed apart)."""
        try:
            return {read_preset(path, model_dirs=self.model_dirs, check_model=False).model_file}
        except TimbrelError:
            return set()

    def _implicit(self, path: Path) -> Preset:
        """A default user preset for a bare model file, after `load_model` accepts the file."""
        try:
            key = file_key(path)
            if key not in _model_checks:
                try:
                    load_model(path)
                    _model_checks[key] = ""
                except TimbrelError as err:
                    _model_checks[key] = " ".join(str(err).splitlines())
            if _model_checks[key]:
                raise TimbrelError(_model_checks[key])
            sha = sha256_file(path)
        except OSError as err:
            raise TimbrelError(f"{path}: cannot read the model ({err.strerror or err})") from None
        try:
            name = check_name(path.stem)
        except TimbrelError as err:
            raise TimbrelError(f"{path}: cannot list this model as a preset: {err}; import it with a name") from None
        return Preset(name=name, model_file=path.name, model_sha256=sha, category="user",
                      path=path, model_path=path, implicit=True)

    def _find(self, scan: _Scan, name: str) -> Preset:
        wanted, key = fold(name.strip()), slug(name)
        for preset in scan.presets:
            if fold(preset.name) == wanted:
                return preset
        for preset in scan.presets:
            if key and preset.slug == key:
                return preset
        for path, line in scan.problems:
            if key and slug(path.stem) == key:
                raise TimbrelError(line)
        close = [p.name for p in search_presets(scan.presets, name)[:3]]
        close = close or difflib.get_close_matches(name, [p.name for p in scan.presets], n=3, cutoff=0.5)
        if close:
            raise TimbrelError(f"no preset {name!r}; did you mean {' or '.join(map(repr, close))}?")
        raise TimbrelError(f"no preset {name!r} ({len(scan.presets)} presets; `timbrel presets list` shows them)")

    # Writing ------------------------------------------------------------------------------

    def save(self, preset: Preset, name: str, force: bool = False) -> Path:
        """Write `preset` as the user preset `name`; returns the file (`presets_dir/SLUG.toml`).

        Refuses an existing user preset unless `force`, and always refuses a factory preset's
        name. The preset's model must be one the new file finds (same name and sha256); a model
        found only elsewhere (`preset.model_path`) is copied into the user models folder.
        """
        return self._save(self._scan(), preset, name, force)

    def derive(self, from_name: str, name: str, settings: Mapping[str, str | float], force: bool = False) -> Path:
        """Save preset `from_name` as `name` with `settings` changed (`timbrel.presets.preset.apply_settings`
        keys, such as `gain_db`, `midi.glide_s`, `effects.0.bypass`, `effects.eq.peak1_db`, `tags`).

        The new preset plays the same model file (name and sha256); returns its file.
        """
        scan = self._scan()
        base = self._find(scan, from_name)
        return self._save(scan, apply_settings(base, settings), name, force)

    def rename(self, old: str, new: str, force: bool = False) -> Path:
        """Give user preset `old` the name `new` (and the file name that goes with it); returns the new file.

        A preset implicit in a bare model file becomes a preset file of that name.
        """
        scan = self._scan()
        preset = self._find(scan, old)
        self._refuse_factory(preset, "renamed")
        if preset.implicit:
            return self._save(scan, preset, new, force)
        path = self._save(scan, preset, new, force, moving=preset.path)
        if preset.path != path:
            try:
                preset.path.unlink()
            except OSError as err:
                raise TimbrelError(f"{preset.path}: saved as {path} but could not remove the old file "
                                   f"({err.strerror or err})") from None
        return path

    def remove(self, name: str) -> Path:
        """Delete user preset `name`'s file; returns it. Its model stays (other presets may play it;
        with none left it lists as an implicit preset)."""
        preset = self._find(self._scan(), name)
        self._refuse_factory(preset, "removed")
        if preset.implicit:
            raise TimbrelError(f"{preset.path}: {preset.name!r} is a model file with no preset file; "
                               "delete the model file itself to remove it")
        try:
            preset.path.unlink()
        except OSError as err:
            raise TimbrelError(f"{preset.path}: cannot remove ({err.strerror or err})") from None
        return preset.path

    def import_model(self, path: str | os.PathLike, name: str | None = None, force: bool = False,
                     category: str = "user") -> Preset:
        """Validate a model file (`load_model`), copy it to `models_dir/SLUG.onnx` and write a user
        preset `name` (default: the file's stem) that plays it with default settings.

        Refuses an existing preset, or a different model already at that file, unless `force`.
        """
        source = Path(path)
        info = load_model(source).info
        scan = self._scan()
        name = check_name(source.stem if name is None else name)
        if category not in CATEGORIES:
            raise TimbrelError(f"no category {category!r} (categories: {', '.join(CATEGORIES)})")
        self._claim(scan, name, force)
        sha = _sha(source)
        destination = self.models_dir / f"{slug(name)}.onnx"
        if destination.is_file() and _sha(destination) != sha and not force:
            raise TimbrelError(f"{destination}: a different model is already there; use --force to replace it "
                               "(presets playing it will then report a sha256 mismatch)")
        if not destination.is_file() or _sha(destination) != sha:
            _write(destination, source=source)
        description = f"Imported from {source.name}" + (f"; {info.unfit_note}" if info.unfit_note else "")
        quality = {key: float(value) for key, value in info.provenance.get("quality", {}).items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}
        preset = Preset(name=name, model_file=destination.name, model_sha256=sha, category=category,
                        description=description, model_path=destination, quality=quality)
        written = self._save(self._scan(), preset, name, force)
        return read_preset(written, model_dirs=self.model_dirs)

    def _save(self, scan: _Scan, preset: Preset, name: str, force: bool, moving: Path | None = None) -> Path:
        name = check_name(name)
        target = self._claim(scan, name, force or moving == self.presets_dir / f"{slug(name)}.toml", moving)
        new = replace(preset, name=name, path=None, factory=False, implicit=False)
        text = preset_to_toml(new)
        parse_preset(text, str(target))
        self._place_model(new, target)
        _write(target, text.encode("utf-8"))
        return target

    def _claim(self, scan: _Scan, name: str, force: bool, moving: Path | None = None) -> Path:
        """The file for user preset `name`, after the refusals: a factory name, a name another
        user file holds, an existing file without `force`."""
        key = slug(name)
        for preset in scan.presets:
            if preset.factory and preset.slug == key:
                raise TimbrelError(f"{name!r} is the factory preset {preset.path}, which is read-only; "
                                   "save under another name")
        factory_file = self.factory_dir / f"{key}.toml"
        if factory_file.exists():
            raise TimbrelError(f"{name!r} is the factory preset {factory_file}, which is read-only; "
                               "save under another name")
        target = self.presets_dir / f"{key}.toml"
        for preset in scan.presets:
            if (not preset.factory and not preset.implicit and preset.slug == key
                    and preset.path not in (target, moving)):
                raise TimbrelError(f"{preset.path}: already holds user preset {preset.name!r}; "
                                   "rename or remove it first")
        if target.exists() and not force:
            raise TimbrelError(f"{target}: user preset {name!r} already exists; use --force to replace it")
        return target

    def _place_model(self, preset: Preset, target: Path) -> None:
        """Make sure the preset file at `target` will find its model, copying it in when needed."""
        folders = model_dirs_for(target, self.model_dirs)
        found = find_model(preset.model_file, folders)
        if found is not None and _sha(found) == preset.model_sha256:
            return
        source = preset.model_path
        if source is None or not source.is_file() or _sha(source) != preset.model_sha256:
            raise TimbrelError(f"{preset.name}: model file {preset.model_file!r} with sha256 "
                               f"{preset.model_sha256[:12]}… not found (looked in {', '.join(map(str, folders))})")
        if found is not None and folders.index(found.parent) <= folders.index(self.models_dir):
            raise TimbrelError(f"{found}: a different model of that name is already in use; import {source} "
                               "under another name")
        _write(self.models_dir / preset.model_file, source=source)

    @staticmethod
    def _refuse_factory(preset: Preset, done: str) -> None:
        if preset.factory:
            raise TimbrelError(f"{preset.path}: factory preset {preset.name!r} is read-only and cannot be {done}; "
                               "save a copy under another name")


# Helpers ------------------------------------------------------------------------------------


def _files(folder: Path, suffix: str) -> list[Path]:
    """The entries of `folder` ending in `suffix`, sorted, skipping hidden ones (and temporary files)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [folder / n for n in names if n.endswith(suffix) and not n.startswith(".")]


def _sha(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as err:
        raise TimbrelError(f"{path}: cannot read ({err.strerror or err})") from None


def _write(path: Path, data: bytes = b"", source: Path | None = None) -> None:
    """Atomically and durably replace `path` with `data`, or with a copy of file `source` (`timbrel.engine.atomic`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary, open(temporary, "wb") as out:
            if source is None:
                out.write(data)
            else:
                with open(source, "rb") as stream:
                    out.writelines(iter(lambda: stream.read(1 << 20), b""))
    except OSError as err:
        raise TimbrelError(f"{path}: could not write ({err.strerror or err}); the previous file, if any, "
                           "is unchanged") from None


