"""LV2 plugins in the chain, for real: Debian's x42-plugins, dragonfly-reverb-lv2 and
lsp-plugins-lv2, loaded through liblilv, checked against references (the x42 compressor's
static curve from its gain law, the x42 EQ's gain at its band centre and its high-pass slope,
the Dragonfly plate's decay time, x42 convoLV2's output against numpy's convolution with the
impulse response its worker loaded), the worker, latency, fault isolation, live edits that
do not click, on JACK too, and presets that name plugins by URI.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import machine_allowance, wait_until
from tests.test_chain import clean_sine, max_jump
from tests.test_live import live, model, quiet_instrument, record  # noqa: F401  (the live fixtures)
from timbrel.engine.errors import TimbrelError
from timbrel.plugin.chain import FADE_S, Chain
from timbrel.plugin.effects import create_effect, effect_class
from timbrel.plugin.lv2 import catalog
from timbrel.plugin.lv2 import features as lv2_features
from timbrel.plugin.lv2.catalog import LV2NotFound, LV2Refused
from timbrel.plugin.lv2.host import LV2Effect
from timbrel.plugin.lv2.worker import MessageRing
from timbrel.presets.preset import parse_preset
from timbrel.presets.writing import preset_to_toml

SR, BLOCK = 48000, 128
COMPRESSOR = "lv2:http://gareus.org/oss/lv2/darc#stereo"
EQ = "lv2:http://gareus.org/oss/lv2/fil4#stereo"
EQ_MONO = "lv2:http://gareus.org/oss/lv2/fil4#mono"
LIMITER = "lv2:http://gareus.org/oss/lv2/dpl#stereo"
PLATE = "lv2:urn:dragonfly:plate"
LSP_COMPRESSOR = "lv2:http://lsp-plug.in/plugins/lv2/compressor_stereo"
MISSING = "lv2:urn:timbrel:test:not-installed"


def sine(hz: float, seconds: float, amplitude: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def power_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def gain_db(effect, x: np.ndarray, tail: int = 9600) -> float:
    """The effect's steady-state gain on `x` (mono, fed to both channels): the last `tail` samples."""
    y = effect(x, SR, BLOCK)
    assert np.allclose(y[0], y[1])
    return power_db(y[0, -tail:]) - power_db(x[-tail:])


# What is installed, and what a plugin looks like ----------------------------------------------


def test_the_test_plugins_are_installed_and_listed_by_uri_and_short_name():
    entries = {e.uri: e for e in catalog.installed()}
    for name in (COMPRESSOR, EQ, EQ_MONO, LIMITER, PLATE, LSP_COMPRESSOR):
        assert name[len("lv2:"):] in entries, f"{name} is not installed (apt-get install x42-plugins " \
                                              "dragonfly-reverb-lv2 lsp-plugins-lv2)"
    short = entries[PLATE[len("lv2:"):]].short_name
    assert short == "dragonfly-plate-reverb"
    assert effect_class(short) is effect_class(PLATE)
    assert len({e.short_name for e in entries.values()}) == len(entries)


def test_timbrel_plugins_list_shows_lv2_plugins_with_their_uris():
    listed = subprocess.run([sys.executable, "-m", "timbrel", "plugins", "list", "--json"], capture_output=True,
                            text=True, check=True).stdout
    by_uri = {p["uri"]: p for p in json.loads(listed) if p.get("source") == "LV2"}
    plate = by_uri["urn:dragonfly:plate"]
    assert plate["name"] == "dragonfly-plate-reverb" and plate["status"] == "ok"
    assert {p["id"] for p in plate["parameters"]} >= {"decay", "dry_level", "algorithm"}
    # An LV2 instrument or control utility is listed too, with why it cannot be an effect.
    assert any(p["status"].startswith("has no audio input") for p in by_uri.values())
    table = subprocess.run([sys.executable, "-m", "timbrel", "plugins", "list"], capture_output=True, text=True,
                           check=True).stdout
    assert "urn:dragonfly:plate" in table and "dragonfly-plate-reverb" in table


def test_control_ports_become_parameters_with_ranges_units_scales_and_switches():
    eq = {p.id: p for p in effect_class(EQ).parameters}
    assert (eq["freq3"].unit, eq["freq3"].minimum, eq["freq3"].maximum, eq["freq3"].scale) == ("Hz", 100, 10000, "log")
    assert (eq["gain3"].unit, eq["gain3"].minimum, eq["gain3"].maximum) == ("dB", -18, 18)
    assert eq["enable"].choices == ("off", "on") and eq["enable"].default == 1  # a toggle is a switch
    plate = {p.id: p for p in effect_class(PLATE).parameters}
    assert plate["algorithm"].choices == ("Simple", "Nested", "Tank")  # an enumeration's scale points
    assert (plate["decay"].unit, plate["predelay"].unit, plate["dry_level"].unit) == ("s", "ms", "%")
    mixer = effect_class("lv2:http://gareus.org/oss/lv2/matrixmixer#i8o8").parameters  # port groups become headings
    assert [(p.id, p.group) for p in mixer[:2]] == [("mix_1_1", "Source 1"), ("mix_1_2", "Source 1")]
    assert {p.group for p in mixer} == {f"Source {i}" for i in range(1, 9)}
    # Each one is a Parameter like the built-ins': the one value rule applies.
    with pytest.raises(TimbrelError, match=r"^freq3 = 5 is out of range \(100 to 10000 Hz\)$"):
        eq["freq3"].check(5)


# References ----------------------------------------------------------------------------------


def darc_gain_db(threshold_db: float, ratio: float, power: float) -> float:
    """The x42 compressor's steady-state gain: (20 z)^(-ratio/2) in amplitude, where z is the
    threshold's power term 0.5·10^(threshold/10) plus the signal's mean-square `power`."""
    return -20 * (0.5 * ratio) * np.log10(20 * (0.5 * 10 ** (threshold_db / 10) + power))


@pytest.mark.parametrize("threshold_db, ratio", [(-30, 0.5), (-20, 1.0), (-40, 0.25)])
def test_x42_compressor_follows_its_static_curve(threshold_db, ratio):
    compressor = create_effect(COMPRESSOR, {"threshold": threshold_db, "Ratio": ratio})
    for level_db in (-40, -20, -10, -3):
        x = sine(1000, 1.5, 10 ** (level_db / 20))
        expected = darc_gain_db(threshold_db, ratio, float(np.mean(x[-9600:].astype(np.float64) ** 2)))
        assert gain_db(compressor, x) == pytest.approx(expected, abs=0.05), (level_db, expected)
        assert compressor.outputs()["gain_min"] == pytest.approx(expected, abs=0.05)  # its own meter agrees


def test_the_compressor_curve_test_can_fail():
    """At a ratio of 0 the plugin applies only its fixed gain; the reference for 0.5 is far off."""
    x = sine(1000, 1.5, 10 ** (-3 / 20))
    flat = gain_db(create_effect(COMPRESSOR, {"threshold": -30, "Ratio": 0.0}), x)
    assert abs(flat - darc_gain_db(-30, 0.5, float(np.mean(x.astype(np.float64) ** 2)))) > 3


def test_x42_eq_gain_at_its_band_centre_its_overall_gain_and_its_high_pass_slope():
    peak = create_effect(EQ, {"sec3": 1, "freq3": 1000, "gain3": 12, "q3": 1.0})
    assert gain_db(peak, sine(1000, 0.5)) == pytest.approx(12.0, abs=0.05)
    for octaves in (1, 2):  # a peaking band is symmetric in octaves about its centre
        below, above = gain_db(peak, sine(1000 / 2**octaves, 0.5)), gain_db(peak, sine(1000 * 2**octaves, 0.5))
        assert 0.5 < below < 11.5 and below == pytest.approx(above, abs=0.15)
    assert abs(gain_db(peak, sine(60, 0.5))) < 0.5 and abs(gain_db(peak, sine(16000, 0.5))) < 0.5
    cut = create_effect(EQ, {"sec3": 1, "freq3": 1000, "gain3": -12, "q3": 1.0})
    assert gain_db(cut, sine(1000, 0.5)) == pytest.approx(-12.0, abs=0.05)
    louder = create_effect(EQ, {"gain": 6})
    for hz in (100, 1000, 10000):
        assert gain_db(louder, sine(hz, 0.5)) == pytest.approx(6.0, abs=0.05)
    high_pass = create_effect(EQ, {"HighPass": 1, "HPfreq": 400})
    at_100, at_50 = gain_db(high_pass, sine(100, 1.0)), gain_db(high_pass, sine(50, 1.0))
    assert at_50 - at_100 == pytest.approx(-12.0, abs=1.0)  # a second-order slope: 12 dB an octave
    assert gain_db(high_pass, sine(4000, 0.5)) == pytest.approx(0.0, abs=0.1)


def decay_time_s(response: np.ndarray) -> float:
    """T30 of an impulse response: twice the time its energy decay curve takes from -5 to -35 dB."""
    energy = np.cumsum(response[::-1].astype(np.float64) ** 2)[::-1]
    curve = 10 * np.log10(energy / energy[0] + 1e-30)
    return 2 * (int(np.argmax(curve < -35)) - int(np.argmax(curve < -5))) / SR


@pytest.mark.parametrize("decay_s", [0.5, 1.0, 2.0])
def test_dragonfly_plate_decays_in_the_time_its_decay_parameter_says(decay_s):
    plate = create_effect(PLATE, {"dry_level": 0, "decay": decay_s})
    impulse = np.zeros(5 * SR, dtype=np.float32)
    impulse[0] = 1.0
    wet = plate(impulse, SR, BLOCK)
    assert decay_time_s(wet[0]) == pytest.approx(decay_s, rel=0.1)
    assert decay_time_s(wet[1]) == pytest.approx(decay_s, rel=0.1)
    assert np.abs(wet[:, 4 * SR:]).max() < 1e-3 * np.abs(wet).max()


# Host features: worker, latency, mono plugins, refusals ---------------------------------------------


def test_a_plugin_that_needs_the_worker_gets_its_jobs_done_off_the_audio_thread():
    plate = create_effect(PLATE)
    assert "http://lv2plug.in/ns/ext/worker#schedule" in plate.description.required_features
    plate.prepare(SR, BLOCK)
    bus = np.zeros((2, BLOCK), dtype=np.float32)
    none = np.zeros(0, dtype=np.int32)
    # Dragonfly (DPF) turns a key/value event on its atom input into a job for its worker.
    assert plate.send_atom("urn:distrho:KeyValueState", b"key\0value\0")
    plate.process(bus[0], bus, none)
    assert wait_until(lambda: plate.worker_jobs == 1, timeout=5.0)
    plate.process(bus[0], bus, none)
    assert plate.worker_jobs == 1 and not plate._workers[0].fault


def atom(type_uri: str, payload: bytes) -> bytes:
    """One LV2 atom: size, type, body, padded to 8 bytes."""
    urid = lv2_features.urids().map
    packed = struct.pack("<II", len(payload), urid(type_uri)) + payload
    return packed + b"\0" * (-len(packed) % 8)


def patch_set(property_uri: str, path: str) -> bytes:
    """The body of a `patch:Set` object that sets `property_uri` to the file `path`."""
    urid = lv2_features.urids().map
    body = struct.pack("<II", 0, urid("http://lv2plug.in/ns/ext/patch#Set"))
    body += struct.pack("<II", urid("http://lv2plug.in/ns/ext/patch#property"), 0)
    body += atom("http://lv2plug.in/ns/ext/atom#URID", struct.pack("<I", urid(property_uri)))
    body += struct.pack("<II", urid("http://lv2plug.in/ns/ext/patch#value"), 0)
    return body + atom("http://lv2plug.in/ns/ext/atom#Path", path.encode() + b"\0")


def test_the_worker_loads_an_impulse_response_and_the_plugin_swaps_it_in_at_a_block_boundary(tmp_path):
    """x42's convoLV2 reads the file in its worker, answers, and takes the new convolver in
    `work_response`: the whole round trip, with a mono plugin running once per channel."""
    import soundfile

    response = np.random.default_rng(5).standard_normal(512).astype(np.float32) * np.exp(-np.arange(512) / 100)
    soundfile.write(tmp_path / "ir.wav", response, SR, subtype="FLOAT")
    convolver = create_effect("lv2:http://gareus.org/oss/lv2/convoLV2#Mono")
    assert convolver.description.dual_mono and convolver.description.worker
    convolver.prepare(SR, 256)
    bus = np.zeros((2, 256), dtype=np.float32)
    none = np.zeros(0, dtype=np.int32)
    assert convolver.send_atom("http://lv2plug.in/ns/ext/atom#Object",
                               patch_set("http://gareus.org/oss/lv2/convoLV2#impulse", str(tmp_path / "ir.wav")))

    def loaded() -> bool:
        convolver.process(bus[0], bus, none)  # answers arrive at block boundaries
        return all(w.responses.peek() < 0 and w.jobs >= 2 for w in convolver._workers)

    assert wait_until(loaded, timeout=10.0), [w.jobs for w in convolver._workers]
    x = (0.1 * np.random.default_rng(6).standard_normal((2, 256 * 20))).astype(np.float32)
    y = np.zeros_like(x)
    for start in range(0, x.shape[1], 256):
        bus[:] = x[:, start : start + 256]
        convolver.process(bus[0], bus, none)
        y[:, start : start + 256] = bus
    for channel in range(2):  # the file's response, at convoLV2's fixed gain of 0.5 for a mono file
        expected = 0.5 * np.convolve(x[channel].astype(np.float64), response)[: x.shape[1]]
        np.testing.assert_allclose(y[channel], expected, atol=1e-5)
    assert not any(w.fault for w in convolver._workers)


def test_a_plugin_needing_a_feature_the_host_withholds_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(lv2_features, "ACCEPTED", tuple(f for f in lv2_features.ACCEPTED
                                                         if f != lv2_features.WORKER_SCHEDULE))
    catalog.refresh()
    try:
        with pytest.raises(LV2Refused) as refused:
            create_effect(PLATE)
        assert str(refused.value) == ("LV2 plugin 'urn:dragonfly:plate' needs features timbrel does not provide: "
                                      "http://lv2plug.in/ns/ext/worker#schedule")
        create_effect(EQ)  # one that does not need it still loads
    finally:
        monkeypatch.undo()
        catalog.refresh()


def test_unknown_and_uninstalled_plugins_fail_in_one_line():
    with pytest.raises(LV2NotFound, match=r"^LV2 plugin 'urn:timbrel:test:not-installed' is not installed "):
        create_effect(MISSING)
    with pytest.raises(TimbrelError, match=r"^no effect 'x42-nothing' \(known: .*or an installed LV2 plugin"):
        create_effect("x42-nothing")
    with pytest.raises(LV2Refused, match=r"has no audio input"):
        create_effect("lv2:http://gareus.org/oss/lv2/controlfilter#invert")


def test_the_latency_port_is_reported_and_added_to_the_chains_latency():
    limiter = create_effect(LIMITER)
    chain = Chain(None, [create_effect(EQ), limiter])
    chain.prepare(SR, BLOCK)
    assert limiter.latency_samples == 64
    assert chain.latency_samples == 64
    x = np.zeros(4800, dtype=np.float32)
    x[100] = 0.1
    y = chain(x, SR, BLOCK)
    assert int(np.argmax(np.abs(y[0]))) == 100 + limiter.latency_samples
    chain.bypass(1)
    assert chain.latency_samples == 0


def test_a_mono_plugin_runs_once_per_channel():
    eq = create_effect(EQ_MONO, {"sec3": 1, "freq3": 1000, "gain3": 12, "q3": 1.0})
    left, right = sine(1000, 0.5), sine(60, 0.5)
    y = eq(np.stack([left, right]), SR, BLOCK)
    assert power_db(y[0, -9600:]) - power_db(left[-9600:]) == pytest.approx(12.0, abs=0.05)
    assert abs(power_db(y[1, -9600:]) - power_db(right[-9600:])) < 0.5  # the band's far skirt, as in stereo


def test_processing_in_blocks_of_any_size_equals_one_whole_run():
    rng = np.random.default_rng(3)
    x = (0.2 * rng.standard_normal((2, 9000))).astype(np.float32)
    settings = {"threshold": -35, "Ratio": 0.8, "attack": 0.002}
    whole = create_effect(COMPRESSOR, settings)(x, SR, 4096)
    compressor = create_effect(COMPRESSOR, settings)
    compressor.prepare(SR, 4096)
    out, at = np.zeros_like(x), 0
    for size in (1, 7, 128, 4096, 333, 64, 2000, 2401):
        bus = np.array(x[:, at : at + size])
        compressor.process(bus[0], bus, np.zeros(0, dtype=np.int32))
        out[:, at : at + size] = bus
        at += size
    np.testing.assert_allclose(out, whole, atol=1e-6)


def test_prepared_again_a_plugin_starts_from_silence():
    plate = create_effect(PLATE, {"dry_level": 0})
    impulse = np.zeros(SR, dtype=np.float32)
    impulse[0] = 1.0
    first = plate(impulse, SR, BLOCK)
    np.testing.assert_allclose(plate(impulse, SR, BLOCK), first, atol=1e-7)


# In the chain: live edits and fault isolation ---------------------------------------------------


def run_chain(chain: Chain, blocks: int, edits: dict) -> np.ndarray:
    chain.prepare(SR, 4096)
    out = np.zeros((2, blocks * BLOCK), dtype=np.float32)
    clean = clean_sine(blocks * BLOCK).astype(np.float32)
    bus = np.zeros((2, 4096), dtype=np.float32)
    silence = np.zeros(4096, dtype=np.float32)
    for i in range(blocks):
        if i in edits:
            edits[i](chain)
        view = bus[:, :BLOCK]
        view[:] = clean[i * BLOCK : (i + 1) * BLOCK]
        chain.process(silence[:BLOCK], view, np.zeros(0, dtype=np.int32))
        out[:, i * BLOCK : (i + 1) * BLOCK] = view
    return out


def test_inserting_bypassing_and_removing_an_lv2_effect_while_playing_never_clicks():
    edits = {
        10: lambda c: c.insert(0, create_effect(EQ, {"gain": -12})),
        30: lambda c: c.bypass(0),
        45: lambda c: c.bypass(0, False),
        60: lambda c: c.move(0, 1),
        80: lambda c: c.remove("x42-eq-parametric-equalizer-stereo"),
    }
    out = run_chain(Chain(None, [create_effect("gain")]), 100, edits)[0]
    clean = clean_sine(100 * BLOCK)
    assert max_jump(out) < 1.5 * max_jump(clean)
    faded_in = slice(10 * BLOCK + int(FADE_S * SR) + 1, 30 * BLOCK)  # the plugin glides its own gain too
    assert power_db(out[faded_in]) - power_db(clean[faded_in]) == pytest.approx(-12.0, abs=0.5)
    np.testing.assert_allclose(out[90 * BLOCK :], clean[90 * BLOCK :], atol=1e-6)


def test_an_lv2_eq_switched_in_without_the_fade_would_have_clicked():
    """The click measure above can fail: the same EQ at full wet from its first block trips it."""
    def abrupt(chain: Chain) -> None:
        chain.insert(0, create_effect(EQ, {"gain": -12}))
        chain.slots[0].mix = 1.0

    out = run_chain(Chain(None, [create_effect("gain")]), 30, {10: abrupt})[0]
    assert max_jump(out) > 3 * max_jump(clean_sine(30 * BLOCK))


def test_an_lv2_effect_that_produces_nan_is_disabled_with_one_line_and_the_chain_plays_on():
    chain = Chain(None, [create_effect(EQ, {"gain3": 6}), create_effect("gain")])
    chain.prepare(SR, BLOCK)
    bus = np.full((2, BLOCK), np.inf, dtype=np.float32)
    chain.process(bus[0], bus, np.zeros(0, dtype=np.int32))
    assert chain.faults == ["effect 'x42-eq-parametric-equalizer-stereo' disabled: produced NaN or inf"]
    bus = np.full((2, BLOCK), 0.25, dtype=np.float32)
    chain.process(bus[0], bus, np.zeros(0, dtype=np.int32))
    np.testing.assert_allclose(bus, 0.25)


def test_an_lv2_effect_over_its_time_budget_is_disabled_with_one_line():
    chain = Chain(None, [create_effect(PLATE)], budget_share=1e-6)
    chain.prepare(SR, BLOCK)
    bus = np.zeros((2, BLOCK), dtype=np.float32)
    for _ in range(10):
        bus[:] = 0.1
        chain.process(bus[0], bus, np.zeros(0, dtype=np.int32))
    assert len(chain.faults) == 1 and chain.faults[0].startswith(
        "effect 'dragonfly-plate-reverb' disabled: over its time budget")


def test_a_failed_worker_job_disables_the_effect_with_one_line():
    plate = create_effect(PLATE)
    chain = Chain(None, [plate])
    chain.prepare(SR, BLOCK)
    plate._workers[0].fault = "its worker failed (work returned status 1)"  # as the worker thread sets it
    bus = np.full((2, BLOCK), 0.1, dtype=np.float32)
    chain.process(bus[0], bus, np.zeros(0, dtype=np.int32))
    assert chain.faults == [("effect 'dragonfly-plate-reverb' disabled: raised LV2Fault: its worker failed "
                             "(work returned status 1)")]
    np.testing.assert_allclose(bus, 0.1)


def test_the_message_ring_keeps_order_across_its_end_and_refuses_when_full():
    ring = MessageRing(64)
    payloads = [bytes([i]) * (1 + i % 13) for i in range(40)]
    for payload in payloads:
        buffer = np.frombuffer(payload, dtype=np.uint8).copy()
        assert ring.write(buffer.ctypes.data, len(payload))
        size = ring.peek()
        assert size == len(payload)
        assert bytes(np.ctypeslib.as_array((np.ctypeslib.ctypes.c_uint8 * size).from_address(ring.address()))) \
            == payload
        ring.pop(size)
    assert ring.peek() == -1
    ring, data = MessageRing(64), np.zeros(24, dtype=np.uint8)
    assert ring.write(data.ctypes.data, 24) and ring.write(data.ctypes.data, 24)
    assert not ring.write(data.ctypes.data, 24)


# Presets --------------------------------------------------------------------------------------

PRESET = """format = 1
[preset]
name = "Violin in a plate"
[model]
file = "violin.onnx"
sha256 = "{sha}"

[[effects]]
type = "{eq}"
[effects.parameters]
freq3 = 800.0
gain3 = 4.5
enable = "on"

[[effects]]
type = "{missing}"
bypass = true
[effects.parameters]
amount = 0.5

[[effects]]
type = "{plate}"
[effects.parameters]
decay = 1.5
algorithm = "Tank"
"""


def test_a_preset_stores_lv2_effects_by_uri_with_port_values_and_loads_them_back(tmp_path):
    from timbrel.presets import default_model
    from timbrel.presets.build import build_chain
    from timbrel.presets.model_files import sha256_file

    text = PRESET.format(sha=sha256_file(default_model()), eq=EQ, missing=MISSING, plate=PLATE)
    preset = parse_preset(text)
    assert [e.type for e in preset.effects] == [EQ, MISSING, PLATE]
    assert preset.effects[0].parameters == {"freq3": 800.0, "gain3": 4.5, "enable": 1.0}
    assert preset.effects[2].parameters == {"decay": 1.5, "algorithm": 2.0}
    assert preset.notes == [(f"Violin in a plate: effects[1] ({MISSING}): LV2 plugin 'urn:timbrel:test:not-installed' "
                             "is not installed (`timbrel plugins list` shows those that are); it plays without this "
                             "effect")]
    assert parse_preset(preset_to_toml(preset)) == preset  # the missing one is written back as read
    assert f'type = "{MISSING}"' in preset_to_toml(preset) and "amount = 0.5" in preset_to_toml(preset)

    preset.model_path = default_model()
    chain = build_chain(preset)
    assert [s.key for s in chain.slots] == ["x42-eq-parametric-equalizer-stereo", "dragonfly-plate-reverb"]
    eq, plate = chain.effects
    assert isinstance(eq, LV2Effect) and eq.effect_type == EQ
    assert eq.params.get("freq3") == 800.0 and plate.params.get("algorithm") == 2.0
    chain.set_parameter("dragonfly-plate-reverb.decay", 2.5)
    assert plate.params.get("decay") == 2.5


def test_a_preset_with_a_bad_lv2_port_value_fails_in_one_line():
    text = PRESET.format(sha="0" * 64, eq=EQ, missing=MISSING, plate=PLATE).replace("freq3 = 800.0", "freq3 = 5.0")
    with pytest.raises(TimbrelError, match=r"^<preset>: effects\[0\] \(lv2:.*fil4#stereo\) parameters freq3 = 5 is "
                                           r"out of range \(100 to 10000 Hz\)$"):
        parse_preset(text)


# Live, on a JACK server ---------------------------------------------------------------------------


def test_inserting_an_lv2_effect_on_jack_while_a_note_plays_does_not_click(live, model):  # noqa: F811
    """A held note on the real audio path; an LV2 EQ (-6 dB) is inserted, bypassed, brought back
    and removed while it sounds. Each edit is marked in the recording by a MIDI byte the engine
    ignores, sent right after it."""
    engine, stream, peer = live
    chain = Chain(quiet_instrument(model), [])
    engine.load(chain)
    time.sleep(0.1)
    engine.reset_meters()
    mark = [0xFE]  # active sensing: refused and counted by the event queue, sound unaffected

    def script(p):
        at = p.send([0x90, 62, 100])
        time.sleep(0.7)
        for edit in (lambda: chain.insert(0, create_effect(EQ, {"gain": -6})), lambda: chain.bypass(0),
                     lambda: chain.bypass(0, False), lambda: chain.remove(0)):
            edit()
            at += p.send(mark)
            time.sleep(0.5)
        return at

    audio, at = record(peer, 3.0, script)
    status = engine.status()
    assert status.errors == 0 and status.faults == () and stream.callback_errors == 0
    assert status.late_blocks <= machine_allowance(status.blocks)
    steady = audio[at[0] + SR // 4 : at[1] - SR // 20]
    calm = float(np.abs(np.diff(steady, 2)).max())
    for edit in at[1:]:
        around = audio[edit - SR // 20 : edit + SR // 10]
        assert np.abs(np.diff(around, 2)).max() < 2 * calm, f"a click at sample {edit}"
    inserted = audio[at[1] + SR // 4 : at[2] - SR // 50]
    assert power_db(inserted) - power_db(steady) == pytest.approx(-6.0, abs=1.5)


def test_the_example_preset_plays_the_violin_through_an_lv2_eq_and_reverb():
    from timbrel.engine.realtime.events import NOTE_ON
    from timbrel.presets.build import build_chain
    from timbrel.presets.preset import read_preset
    from timbrel.presets.settings import apply_settings, effect_keys

    preset = read_preset(Path(__file__).resolve().parents[1] / "examples" / "presets" / "violin-in-a-plate.toml")
    assert preset.notes == [] and [e.type for e in preset.effects] == [EQ, PLATE]
    assert effect_keys(preset) == ["x42-eq-parametric-equalizer-stereo", "dragonfly-plate-reverb"]
    preset = apply_settings(preset, {"effects.dragonfly-plate-reverb.decay": "2.5"})  # the one --set grammar
    chain = build_chain(preset, voices=4)
    assert chain["dragonfly-plate-reverb"].params.get("decay") == 2.5
    note = np.array([NOTE_ON | 69 << 8 | 100 << 16], dtype=np.int32)
    played = chain(np.zeros(SR, dtype=np.float32), SR, BLOCK, events=note)
    assert np.all(np.isfinite(played)) and np.abs(played).max() > 0.01 and chain.faults == []


def test_rendering_a_preset_that_names_an_uninstalled_plugin_plays_without_it_and_says_so_in_one_line(tmp_path):
    import timbrel

    example = Path(__file__).resolve().parents[1] / "examples" / "presets" / "violin-in-a-plate.toml"
    preset = tmp_path / "violin-somewhere-else.toml"
    preset.write_text(example.read_text().replace("urn:dragonfly:plate", "urn:timbrel:test:not-installed"))
    song = timbrel.write_demo_midi(str(tmp_path / "tune.mid"))
    result = subprocess.run([sys.executable, "-m", "timbrel", "render", "-p", str(preset), "-o",
                             str(tmp_path / "out.wav"), str(song)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [(
        "timbrel: Violin in a Plate: effects[1] (lv2:urn:timbrel:test:not-installed): LV2 plugin "
        "'urn:timbrel:test:not-installed' is not installed (`timbrel plugins list` shows those that are); it plays "
        "without this effect")]
    assert (tmp_path / "out.wav").stat().st_size > 48000


def test_saving_the_sound_from_a_session_stores_lv2_effects_by_uri_with_their_port_values(tmp_path):
    from timbrel.presets.library import Library
    from timbrel.session import Session

    example = Path(__file__).resolve().parents[1] / "examples" / "presets" / "violin-in-a-plate.toml"
    session = Session(library=Library(user_dir=tmp_path), sample_rate=SR, block_size=BLOCK, voices=4)
    try:
        session.load(str(example), wait=True)
        session.set_parameter("dragonfly-plate-reverb.decay", 3.0)
        saved = session.save("Plate Test")
        assert f'type = "{PLATE}"' in saved.read_text() and f'type = "{EQ}"' in saved.read_text()
        again = session.library.get("Plate Test")
        assert [e.type for e in again.effects] == [EQ, PLATE]
        assert again.effects[1].parameters["decay"] == 3.0 and again.effects[1].parameters["algorithm"] == 1.0
        session.load("Plate Test", wait=True)
        assert session.engine.plugin["dragonfly-plate-reverb"].params.get("decay") == 3.0
    finally:
        session.close()


def test_saving_a_sound_keeps_the_effects_this_machine_cannot_make(tmp_path):
    """A preset naming an LV2 plugin not installed here plays without it; saving the sound keeps
    that effect, in its place and with its values, for a machine that has the plugin."""
    from timbrel.presets import default_model
    from timbrel.presets.library import Library
    from timbrel.presets.model_files import sha256_file
    from timbrel.session import Session

    source = tmp_path / "with-missing.toml"
    source.write_text(PRESET.format(sha=sha256_file(default_model()), eq=EQ, missing=MISSING, plate=PLATE))
    session = Session(library=Library(user_dir=tmp_path / "user"), sample_rate=SR, block_size=BLOCK, voices=4)
    try:
        session.load(str(source), wait=True)
        assert len(session.engine.plugin.slots) == 2
        session.set_parameter("dragonfly-plate-reverb.decay", 2.5)
        again = session.library.get(session.save("Kept").stem)
        assert [e.type for e in again.effects] == [EQ, MISSING, PLATE]
        assert again.effects[1].parameters == {"amount": 0.5} and again.effects[1].bypass
        assert again.effects[2].parameters["decay"] == 2.5
    finally:
        session.close()
