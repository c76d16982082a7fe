"""The house's shape: floors import only downward, no file loops, one namespace installed.

The rules are in `tests/layering.py`. Each rule is shown to fire on a copy of the real tree
with one bad import added, so a green run means the rules were checked, not skipped.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from tests.layering import PACKAGES, modules, violations

ROOT = Path(__file__).resolve().parent.parent


def test_floors_import_only_downward_and_no_files_loop():
    assert violations(ROOT) == []


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package sources (Python files only), to break on purpose."""
    for folder in PACKAGES.values():
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("static", "__pycache__",
                                                                                        "*.onnx", "*.toml"))
    return tmp_path


def _add(path: Path, line: str, inside_function: bool = False) -> None:
    text = path.read_text()
    if inside_function:
        path.write_text(text + f"\n\ndef _added():\n    {line}\n")
    else:
        head, sep, rest = text.partition("\nfrom __future__ import annotations\n")
        path.write_text(head + sep + line + "\n" + rest if sep else line + "\n" + text)


@pytest.mark.parametrize(("file", "line", "expected"), [
    ("engine/realtime/host.py", "from timbrel.presets import factory_dir",
     "timbrel.engine.realtime.host imports timbrel.presets (engine may not import presets"),
    ("plugin/chain.py", "from timbrel.presets.library import Library",
     "timbrel.plugin.chain imports timbrel.presets.library (plugin may not import presets"),
    ("presets/names.py", "from timbrel.session import Session",
     "timbrel.presets.names imports timbrel.session (presets may not import application"),
    ("plugin/model.py", "import timbrel", "(the façade is the top floor)"),
    ("timbrel/session.py", "from timbrel.export.train import train",
     "only the training commands import timbrel.export"),
    ("engine/realtime/host.py", "from timbrel.engine.io.audio import AudioStream", "audio-thread code does no I/O"),
])
def test_an_upward_import_is_caught(tree: Path, file: str, line: str, expected: str):
    _add(tree / file, line)
    found = violations(tree)
    assert len(found) >= 1 and any(expected in v for v in found), found
    assert all(file in v or "cycle" in v for v in found), found


def test_a_loop_between_two_files_is_caught(tree: Path):
    _add(tree / "engine/realtime/events.py", "from timbrel.engine.realtime.midi_state import MidiState")
    found = violations(tree)
    assert any(v.startswith("import cycle:") and "timbrel.engine.realtime.events" in v
               and "timbrel.engine.realtime.midi_state" in v for v in found), found


def test_a_deferred_import_of_a_light_module_is_caught_and_one_of_torch_code_is_not(tree: Path):
    _add(tree / "timbrel/audition.py", "from timbrel.engine.errors import TimbrelError", inside_function=True)
    _add(tree / "timbrel/cli/training.py", "from timbrel.export.train import train", inside_function=True)
    found = violations(tree)
    assert len(found) == 1 and "timbrel.audition imports timbrel.engine.errors inside a function" in found[0], found


def test_pyproject_lists_every_package_folder():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == PACKAGES
    packages = {name for name, path in modules(ROOT).items() if path.name == "__init__.py"}
    assert set(config["packages"]) == packages


def test_the_wheel_installs_the_timbrel_namespace_alone(tmp_path: Path):
    """`pip install .` puts one top-level package into site-packages: `timbrel`, with the
    card's folders inside it, the factory presets and models, and the control surface's files.
    Built from a copy of the sources, so that the build leaves nothing in the working tree."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                "bench", "docs", "tests", "examples"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Deprecat" not in result.stderr and "deprecat" not in result.stderr, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("timbrel-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"timbrel"}
    for expected in ("timbrel/engine/realtime/host.py", "timbrel/plugin/chain.py", "timbrel/presets/library.py",
                     "timbrel/export/train.py", "timbrel/presets/factory/violin.toml",
                     "timbrel/presets/factory/models/violin.onnx", "timbrel/ui/static/index.html",
                     "timbrel/__main__.py"):
        assert expected in names
    shipped = {f"timbrel/presets/factory/{p.name}" for p in (ROOT / "presets" / "factory").glob("*.toml")}
    found = {n for n in names if n.startswith("timbrel/presets/factory/") and n.count("/") == 3 and n.endswith(".toml")}
    assert len(shipped) >= 18 and found == shipped
    assert len([n for n in names if n.startswith("timbrel/presets/factory/multis/") and n.endswith(".toml")]) == 2
