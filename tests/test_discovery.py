"""Third-party plugins, for real: the example package and a deliberately broken one are
pip-installed (editable, offline) into this environment and found through their entry points.

The example package stays installed: a later run finds it up to date and skips pip. The
broken one is uninstalled when this module's tests finish, whatever their outcome.
"""

from __future__ import annotations

import importlib
import json
import site
import subprocess
import sys
import sysconfig
import textwrap
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import pytest

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Effect
from timbrel.plugin.discovery import create, discover

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "timbrel-wavefolder"
BROKEN = "timbrel-broken-fixture"


def timbrel(*args):
    return subprocess.run([sys.executable, "-m", "timbrel", *args], capture_output=True, text=True, timeout=300)


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}", pytrace=False)


def install_editable(project: Path) -> None:
    """`pip install -e project` offline, then make it importable in this running interpreter.

    A new install's .pth file is read at interpreter start; `site.addsitedir` reads it now.
    """
    pip("install", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(project))
    importlib.invalidate_caches()
    site.addsitedir(sysconfig.get_paths()["purelib"])


def installed_from(project: Path) -> bool:
    """Whether `project` is installed editable from its folder, with the version and entry points it declares now."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: reinstall every time
        return False
    declared = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    try:
        dist = distribution(declared["name"])
    except PackageNotFoundError:
        return False
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    entry_points = {(group, name, value) for group, table in declared.get("entry-points", {}).items()
                    for name, value in table.items()}
    installed = {(e.group, e.name, e.value) for e in dist.entry_points}
    return (direct.get("dir_info", {}).get("editable") is True and direct.get("url") == project.as_uri()
            and dist.version == declared["version"] and installed == entry_points)


@pytest.fixture(scope="session")
def wavefolder_installed() -> None:
    """The example package, installed editable into this environment (once; later runs find it in place)."""
    if not installed_from(EXAMPLE):
        install_editable(EXAMPLE)
    discover(refresh=True)


BROKEN_FILES = {
    "pyproject.toml": f"""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{BROKEN}"
        version = "0.0.1"

        [project.entry-points."timbrel.plugins"]
        needs-libfoo = "timbrel_broken_fixture.needs_libfoo:Fuzz"
        not-a-plugin = "timbrel_broken_fixture:not_a_plugin"
        bad-syntax = "timbrel_broken_fixture.bad_syntax:Fuzz"
        twin-ids = "timbrel_broken_fixture:TwinIds"

        [tool.setuptools.packages.find]
        where = ["src"]
    """,
    "src/timbrel_broken_fixture/__init__.py": """
        from timbrel.engine.plugin_api import Effect, Parameter


        def not_a_plugin():
            return "a function, not a plugin"


        class TwinIds(Effect):
            parameters = (Parameter("mix", "Mix", "", 0.0, 1.0, 1.0), Parameter("mix", "Mix again", "", 0.0, 1.0, 0.5))
    """,
    "src/timbrel_broken_fixture/needs_libfoo.py": """
        raise ImportError("timbrel-broken-fixture needs libfoo, which is not installed")
    """,
    "src/timbrel_broken_fixture/bad_syntax.py": """
        class Fuzz(:
            pass
    """,
}


@pytest.fixture(scope="module")
def broken_installed(wavefolder_installed, tmp_path_factory) -> None:
    """A distribution of four broken plugins, installed for this module's tests and always uninstalled after."""
    project = tmp_path_factory.mktemp("broken-plugin")
    for name, text in BROKEN_FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(textwrap.dedent(text).lstrip())
    try:
        install_editable(project)
        discover(refresh=True)
        yield
    finally:
        pip("uninstall", "-y", BROKEN)
        src = str(project / "src")
        sys.path[:] = [p for p in sys.path if p != src]
        for module in [m for m in sys.modules if m.split(".")[0] == "timbrel_broken_fixture"]:
            del sys.modules[module]
        importlib.invalidate_caches()
        discover(refresh=True)


def by_name() -> dict:
    return {info.name: info for info in discover()}


def test_discovery_finds_the_example_plugins(wavefolder_installed):
    found = by_name()
    for name, class_name in (("wavefolder", "WaveFolder"), ("bitcrusher", "BitCrusher")):
        info = found[name]
        assert info.ok and info.error == "" and info.status == "ok"
        assert (info.kind, info.version, info.source) == ("effect", "0.1.0", "timbrel-wavefolder")
        assert info.editable and Path(info.location) == EXAMPLE
        assert info.cls.__name__ == class_name and issubclass(info.cls, Effect)
    assert discover() is not discover() and discover() == discover(), "cached, and each caller gets its own list"


def test_create_runs_audio_through_the_effect(wavefolder_installed):
    x = 0.5 * np.sin(2 * np.pi * 220 * np.arange(4800) / 48000).astype(np.float32)
    folded = create("wavefolder", drive_db=18, mix=1.0)(x, 48000)
    assert folded.shape == (2, x.size) and folded.dtype == np.float32 and np.isfinite(folded).all()
    assert np.sqrt(np.mean((folded[0] - x) ** 2)) > 0.1
    crushed = create("bitcrusher", bits=3)(x, 48000)
    assert np.unique(crushed).size <= 8 and not np.array_equal(crushed[0], x)


def test_create_names_what_is_wrong_in_one_line(wavefolder_installed):
    with pytest.raises(TimbrelError, match=r"no plugin 'wavefoldr' \(installed: .*bitcrusher, wavefolder"):
        create("wavefoldr")
    with pytest.raises(TimbrelError, match="no parameter 'drive' .*drive_db"):
        create("wavefolder", drive=3)


def test_plugins_list_shows_them(wavefolder_installed):
    result = timbrel("plugins", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "kind", "version", "source", "status"]
    for name in ("wavefolder", "bitcrusher"):
        row = next(line for line in lines if line.startswith(name + " "))
        assert row.split()[:4] == [name, "effect", "0.1.0", "timbrel-wavefolder"]
        assert str(EXAMPLE) in row and row.endswith(" ok")
    listed = {entry["name"]: entry for entry in json.loads(timbrel("plugins", "list", "--json").stdout)}
    assert listed["wavefolder"]["status"] == "ok" and listed["wavefolder"]["version"] == "0.1.0"
    assert "drive_db" in [p["id"] for p in listed["wavefolder"]["parameters"]]


def test_the_example_package_tests_pass(wavefolder_installed):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


EXPECTED_FAULTS = {
    "needs-libfoo": "failed to import: ImportError: timbrel-broken-fixture needs libfoo, which is not installed",
    "bad-syntax": "failed to import: SyntaxError: ",
    "not-a-plugin": "timbrel_broken_fixture:not_a_plugin is a function, not a timbrel.engine.plugin_api.Plugin subclass",
    "twin-ids": "timbrel_broken_fixture:TwinIds has invalid parameters: parameter ids must be unique",
}


def test_a_broken_distribution_is_reported_in_one_line_per_plugin(broken_installed):
    found = by_name()
    for name, fault in EXPECTED_FAULTS.items():
        info = found[name]
        assert not info.ok and (info.source, info.version) == (BROKEN, "0.0.1")
        assert info.error.startswith(f"plugin '{name}' ({BROKEN} 0.0.1): {fault}"), info.error
        assert "\n" not in info.error and "Traceback" not in info.error
        with pytest.raises(TimbrelError) as raised:
            create(name)
        assert str(raised.value) == info.error
    assert found["needs-libfoo"].cls is None and found["needs-libfoo"].kind == "?"
    assert found["twin-ids"].kind == "effect"
    assert found["wavefolder"].ok and found["bitcrusher"].ok
    assert np.isfinite(create("wavefolder")(np.ones(64, np.float32), 48000)).all()


def test_plugins_list_shows_broken_plugins_and_still_succeeds(broken_installed):
    result = timbrel("plugins", "list")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    for name, fault in EXPECTED_FAULTS.items():
        rows = [line for line in lines if line.startswith(name + " ")]
        assert len(rows) == 1 and fault in rows[0] and BROKEN in rows[0], rows
    assert next(line for line in lines if line.startswith("wavefolder ")).endswith(" ok")
    listed = {entry["name"]: entry for entry in json.loads(timbrel("plugins", "list", "--json").stdout)}
    assert listed["needs-libfoo"]["error"].startswith("plugin 'needs-libfoo' (timbrel-broken-fixture 0.0.1): failed")
