"""The browser control surface, end to end: a Session playing on a real JACK server (dummy
backend), the server process, and Debian's Chromium driven by Playwright. No mocks.

Screenshots go to the test's temporary folder; with TIMBREL_UI_SCREENSHOTS=1 they are written
to docs/ui.png and docs/ui-tablet.png for the README.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect, sync_playwright

from bench.bench_live import hammering
from bench.cpu_noise import NoiseWitness
from tests.conftest import assert_within_machine_allowance, wait_until
from tests.test_io import playback_sources
from timbrel.engine.errors import TimbrelError
from timbrel.engine.realtime.features import estimate_pitch
from timbrel.engine.realtime.stages import TIMES
from timbrel.presets.library import Library
from timbrel.presets.multi import Multi, PartSpec
from timbrel.session import Session
from timbrel.ui import relay
from timbrel.ui.bridge import HEARTBEAT_TIMEOUT_S
from timbrel.ui.server import serve

CHROMIUM = "/usr/bin/chromium"
SR, HOP = 48000, 160
LAPTOP = {"width": 1440, "height": 900}
TABLET = {"width": 820, "height": 1180}
DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("timbrel-user")


@pytest.fixture(scope="module")
def session(jack_server, user_dir):
    """The violin playing on the test JACK server, 48 kHz, block 128, 16 voices, no MIDI input."""
    s = Session(library=Library(user_dir=user_dir), sample_rate=SR, block_size=128, voices=16)
    try:
        s.start("Violin", use_midi=False)
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def surface(session):
    ui = serve(session, port=0)
    try:
        yield ui
    finally:
        ui.close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package chromium (apt-get install chromium)",
                    pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def fresh(session):
    """Every test starts on the violin as its preset sets it, played from MIDI, nothing held."""
    for note in np.flatnonzero(session.engine.keyboard.velocity[0]):
        session.note_off(int(note))
    session.load("Violin", "midi", wait=True)
    assert session.wait_idle()
    return session


@pytest.fixture
def page(browser, surface, fresh):
    context = browser.new_context(viewport=LAPTOP)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda err: problems.append(str(err)))
    tab.goto(surface.url)
    tab.wait_for_selector("#presets li.preset")
    tab.wait_for_selector('[data-param="gain_db"]')
    yield tab
    context.close()
    assert not problems, problems


def request(url: str, path: str, body: bytes | dict | None = None, headers: dict | None = None,
            method: str | None = None) -> tuple[int, dict, dict]:
    """One raw HTTP request: (status, JSON body, response headers)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    base = url.split("?")[0].rstrip("/")
    sent = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(base + path, data=data, headers={**sent, **(headers or {})}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}"), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def visible_presets(page) -> list[str]:
    return page.locator("#presets li.preset .name").all_inner_texts()


# Screenshots and layout -------------------------------------------------------------------------


@pytest.mark.parametrize("viewport, name", [(LAPTOP, "ui.png"), (TABLET, "ui-tablet.png")])
def test_screenshot_and_layout(browser, surface, fresh, viewport, name, tmp_path):
    """No sideways scrolling, keys and preset buttons big enough to touch; on the tablet a tap loads."""
    touch = name == "ui-tablet.png"
    context = browser.new_context(viewport=viewport, has_touch=touch)
    chord = (57, 64, 69, 73)
    try:
        tab = context.new_page()
        tab.goto(surface.url)
        tab.wait_for_selector('[data-param="gain_db"]')
        overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{overflow} px of horizontal scrolling at {viewport}"
        white = tab.locator("#keyboard .key.white").first.bounding_box()
        assert white["width"] >= 44 and white["height"] >= 100, white
        load = tab.locator("#presets li.preset .load").first.bounding_box()
        assert load["height"] >= 44, load
        if touch:
            target = tab.locator('#presets li[data-name="Violin Section"] .load')
            target.scroll_into_view_if_needed()
            box = target.bounding_box()
            tab.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            assert wait_until(lambda: fresh.preset.name == "Violin Section", timeout=15.0), fresh.last_error
            tab.wait_for_selector('#presets li.current[data-name="Violin Section"]', timeout=5000)
        for note in chord:
            fresh.note_on(note, 100)
        tab.locator('#presets li[data-name="Flute"] .fav').click()
        expect(tab.locator("#stat-voices")).to_have_text("4", timeout=5000)
        tab.locator("#presets").evaluate("list => { list.scrollTop = 0; }")
        tab.wait_for_timeout(700)
        shot = DOCS / name if os.environ.get("TIMBREL_UI_SCREENSHOTS") == "1" else tmp_path / name
        tab.screenshot(path=str(shot))
        assert shot.stat().st_size > 20_000
        tab.locator('#presets li[data-name="Flute"] .fav').click()
    finally:
        for note in chord:
            fresh.note_off(note)
        context.close()


# Browsing and loading ---------------------------------------------------------------------------


def test_clicking_a_preset_loads_it_and_the_page_shows_it_as_current(page, session):
    page.locator('#presets li[data-name="Cello"] .load').click()
    assert wait_until(lambda: session.preset.name == "Cello", timeout=15.0), session.last_error
    expect(page.locator("#current")).to_have_text("Cello", timeout=5000)
    page.wait_for_selector('#presets li.current[data-name="Cello"]', timeout=5000)
    assert page.locator("#presets li.current").count() == 1
    # The parameters shown are the cello's: its preset sets the release to 0.4 s.
    expect(page.locator('[data-param="release_s"] .value')).to_have_text("400 ms", timeout=5000)


def test_search_categories_and_favourites_filter_the_list(page, user_dir):
    everything = visible_presets(page)
    assert {"Violin", "Violin Section", "Cello", "Cello Legato", "Flute", "Voice to Flute"} <= set(everything)
    page.fill("#search", "cel")
    cellos = {"Cello", "Cello Legato"}
    assert wait_until(lambda: set(visible_presets(page)) == cellos, timeout=5.0), visible_presets(page)
    page.fill("#search", "")
    assert wait_until(lambda: visible_presets(page) == everything, timeout=5.0)

    page.locator("#categories").get_by_role("button", name="woodwind", exact=True).click()
    assert wait_until(lambda: set(visible_presets(page)) == {"Flute", "Voice to Flute"}, timeout=5.0)
    page.locator("#categories").get_by_role("button", name="All", exact=True).click()
    assert wait_until(lambda: visible_presets(page) == everything, timeout=5.0)

    page.locator('#presets li[data-name="Flute"] .fav').click()
    stored = user_dir / "favourites.json"
    assert wait_until(lambda: stored.exists() and json.loads(stored.read_text()) == ["Flute"], timeout=5.0)
    page.locator("#categories").get_by_role("button", name="★ Favourites").click()
    assert wait_until(lambda: visible_presets(page) == ["Flute"], timeout=5.0)
    page.locator('#presets li[data-name="Flute"] .fav').click()
    assert wait_until(lambda: json.loads(stored.read_text()) == [], timeout=5.0)
    assert wait_until(lambda: visible_presets(page) == [], timeout=5.0)


def test_saving_the_sound_and_auditioning_a_preset(page, session, user_dir):
    session.set_parameter("gain_db", -7.5)
    page.fill("#save-name", "Stage Violin")
    page.locator("#save-form button").click()
    saved = user_dir / "presets" / "stage-violin.toml"
    assert wait_until(saved.exists, timeout=10.0)
    assert wait_until(lambda: "Stage Violin" in visible_presets(page), timeout=5.0)
    assert session.library.get("Stage Violin").midi["gain_db"] == -7.5
    session.set_parameter("gain_db", -3.0)
    page.fill("#save-name", "Stage Violin")
    asked: list[str] = []

    def replace(dialog) -> None:
        # Answered in the handler: a pending dialog blocks the page, and a click waiting on it hangs.
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", replace)
    page.locator("#save-form button").click()
    assert wait_until(lambda: page.wait_for_timeout(10) or bool(asked), timeout=10.0)
    assert "Replace" in asked[0]
    assert wait_until(lambda: session.library.get("Stage Violin").midi["gain_db"] == -3.0, timeout=10.0)

    page.locator('#presets li[data-name="Flute"] .audition').click()
    assert wait_until(lambda: session.preset.name == "Flute", timeout=20.0), session.last_error
    assert wait_until(lambda: session.status()["voices"] > 0, timeout=5.0)
    expect(page.locator("#current")).to_have_text("Flute", timeout=5000)


# Controls ---------------------------------------------------------------------------------------


def test_moving_sliders_and_bypass_set_the_engine(page, session):
    instrument = session.engine.plugin.instrument
    slider = page.locator('[data-param="gain_db"] input[type=range]')
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.8 * box["width"], y)
    page.mouse.down()
    for fraction in np.linspace(0.8, 0.3, 12):
        page.mouse.move(box["x"] + fraction * box["width"], y)
    page.mouse.up()
    position = int(slider.input_value())
    expected = -60.0 + 72.0 * position / 1000
    assert position < 500
    assert wait_until(lambda: abs(instrument.params.get("gain_db") - expected) < 1e-9, timeout=5.0), (
        instrument.params.get("gain_db"), expected)
    assert page.locator('[data-param="gain_db"] .value').inner_text() == f"{expected:.1f} dB"

    eq = session.engine.plugin["eq"]
    peak = next(p for p in eq.params.parameters if p.id == "peak1_db")
    page.locator('[data-param="eq.peak1_db"] input[type=range]').focus()
    page.keyboard.press("End")
    assert wait_until(lambda: eq.params.get("peak1_db") == peak.maximum, timeout=5.0)

    page.locator('button.bypass[data-effect="eq"]').click()
    slot = next(s for s in session.engine.plugin.slots if s.key == "eq")
    assert wait_until(lambda: slot.bypassed, timeout=5.0)
    page.locator('button.bypass[data-effect="eq"]').click()
    assert wait_until(lambda: not slot.bypassed, timeout=5.0)


def test_an_lv2_effect_shows_its_parameters_like_the_others_and_they_reach_it(page, session):
    """The example preset plays the violin through the x42 EQ and a Dragonfly plate (LV2)."""
    session.load(str(EXAMPLES / "presets" / "violin-in-a-plate.toml"), wait=True)
    eq_key, plate_key = "x42-eq-parametric-equalizer-stereo", "dragonfly-plate-reverb"
    page.wait_for_selector(f'[data-param="{eq_key}.gain3"]', timeout=10000)
    expect(page.locator(f'[data-param="{eq_key}.gain3"] .value')).to_have_text("3.00 dB")
    expect(page.locator(f'[data-param="{eq_key}.freq3"] .value')).to_have_text("2.50 kHz")
    expect(page.locator(f'[data-param="{plate_key}.algorithm"] button.choice')).to_have_text(
        ["Simple", "Nested", "Tank"])
    eq, plate = session.engine.plugin[eq_key], session.engine.plugin[plate_key]
    page.locator(f'[data-param="{eq_key}.gain3"] input[type=range]').focus()
    page.keyboard.press("End")
    assert wait_until(lambda: eq.params.get("gain3") == 18.0, timeout=5.0)
    page.locator(f'[data-param="{plate_key}.algorithm"] button.choice', has_text="Tank").click()
    assert wait_until(lambda: plate.params.get("algorithm") == 2.0, timeout=5.0)
    page.locator(f'button.bypass[data-effect="{plate_key}"]').click()
    slot = next(s for s in session.engine.plugin.slots if s.key == plate_key)
    assert wait_until(lambda: slot.bypassed, timeout=5.0)
    assert session.engine.status().faults == ()


def test_switching_mode_reaches_the_session(page, session):
    page.locator("#mode-transfer").click()
    assert wait_until(lambda: session.mode == "transfer", timeout=20.0), session.last_error
    page.wait_for_selector('#mode-transfer[aria-pressed="true"]', timeout=5000)
    assert session.stream.input_device is not None
    page.locator("#open-setup").click()
    output = page.locator("#output-device")
    expect(output.locator("option[selected]")).to_have_count(1, timeout=20000)
    assert output.input_value() == session.stream.output_device
    page.get_by_role("button", name="Close").click()
    page.locator("#mode-midi").click()
    assert wait_until(lambda: session.mode == "midi", timeout=20.0), session.last_error
    page.wait_for_selector('#mode-midi[aria-pressed="true"]', timeout=5000)


# Playing ----------------------------------------------------------------------------------------


def test_an_on_screen_key_sounds_through_jack_while_held(page, session, jack_peer):
    jack_peer.connect_audio_from(playback_sources(jack_peer))
    key = page.locator('#keyboard [data-note="69"]')
    box = key.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 0.8 * box["height"])
    seconds = 2.0
    jack_peer.start_recording(seconds)
    time.sleep(0.3)
    page.mouse.down()
    assert wait_until(lambda: session.engine.keyboard.velocity[0, 69] > 0, timeout=2.0)
    assert "down" in key.get_attribute("class")
    time.sleep(0.8)
    page.mouse.up()
    assert wait_until(lambda: session.engine.keyboard.velocity[0, 69] == 0, timeout=2.0)
    assert wait_until(lambda: jack_peer.recorded() >= int(seconds * SR), timeout=30.0, interval=0.05)
    audio = jack_peer.stop_recording()[0].astype(np.float64)
    sounding = np.flatnonzero(np.abs(audio) > 1e-4)
    assert sounding.size and sounding[0] > int(0.15 * SR), "sound before the key went down"
    held = audio[sounding[0] + SR // 5 : sounding[0] + int(0.7 * SR)]
    assert np.sqrt(np.mean(held**2)) > 0.01
    f0, confidence = estimate_pitch(held.astype(np.float32), SR, HOP)
    assert abs(1200 * np.log2(np.median(f0[confidence > 0]) / 440.0)) < 30
    assert np.abs(audio[-SR // 5 :]).max() < 0.5 * np.abs(held).max()


def test_the_computer_keyboard_plays_and_z_x_shift_octaves(page, session):
    velocity = session.engine.keyboard.velocity[0]
    page.locator('[data-param="gain_db"] input[type=range]').focus()
    page.keyboard.down("a")
    assert wait_until(lambda: velocity[60] > 0, timeout=2.0)
    page.keyboard.up("a")
    assert wait_until(lambda: velocity[60] == 0, timeout=2.0)
    page.keyboard.press("x")
    page.keyboard.down("k")
    assert wait_until(lambda: velocity[84] > 0, timeout=2.0)
    page.keyboard.up("k")
    assert wait_until(lambda: velocity[84] == 0, timeout=2.0)
    page.keyboard.press("z")
    assert page.locator("#octave-label").inner_text() == "C4"


# Bad requests and access ------------------------------------------------------------------------


def test_bad_requests_get_one_line_json_errors_and_the_server_keeps_serving(surface, fresh):
    url = surface.url
    gain = fresh.engine.plugin.instrument.params.get("gain_db")
    bad = [
        (400, request(url, "/api/parameter", b'{"id": "gain_db", "value": ')),
        (400, request(url, "/api/parameter", b"[1, 2]")),
        (404, request(url, "/api/parameter", {"id": "no_such_param", "value": 1})),
        (404, request(url, "/api/parameter", {"id": "nofx.mix", "value": 1})),
        (400, request(url, "/api/parameter", b'{"id": "gain_db", "value": NaN}')),
        (400, request(url, "/api/parameter", b'{"id": "gain_db", "value": Infinity}')),
        (400, request(url, "/api/parameter", {"id": "gain_db", "value": 1e9})),
        (400, request(url, "/api/parameter", {"id": "gain_db", "value": "loud"})),
        (404, request(url, "/api/load", {"name": "No Such Preset"})),
        (400, request(url, "/api/load", {"name": "/etc/passwd"})),
        (400, request(url, "/api/load", {})),
        (400, request(url, "/api/note", {"note": 200, "velocity": 100})),
        (400, request(url, "/api/mode", {"mode": "theremin"})),
        (400, request(url, "/api/bypass", {"key": "eq", "bypassed": "yes"})),
        (404, request(url, "/api/bypass", {"key": "flanger", "bypassed": True})),
        (404, request(url, "/api/nothing")),
        (405, request(url, "/api/status", b"{}", method="PUT")),
        (415, request(url, "/api/note", b'{"note": 60}', headers={"Content-Type": "text/plain"})),
        (413, request(url, "/api/save", b"{}" + b" " * 70000)),
    ]
    for expected, (status, body, _) in bad:
        assert status == expected, (expected, status, body)
        assert isinstance(body.get("error"), str) and body["error"] and "\n" not in body["error"], body
    assert "gain_db" in bad[6][1][1]["error"] and "-60" in bad[6][1][1]["error"]
    assert "Preset" in bad[8][1][1]["error"]
    status, body, _ = request(url, "/api/status")
    assert status == 200 and body["preset"] == "Violin" and surface.running
    assert fresh.engine.plugin.instrument.params.get("gain_db") == gain


def _non_loopback_address() -> str:
    """An address of this machine other than loopback, else 0.0.0.0 (all of them)."""
    candidates = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            candidates.add(probe.getsockname()[0])
        except OSError:
            pass
    try:
        candidates |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    except OSError:
        pass
    found = sorted(a for a in candidates if not a.startswith("127."))
    return found[0] if found else "0.0.0.0"


def test_a_surface_on_the_network_needs_its_token(session, browser):
    host = _non_loopback_address()
    ui = serve(session, host=host, port=0)
    try:
        assert ui.token and len(ui.token) >= 32 and f"?token={ui.token}" in ui.url
        reach = ui.url.split("?")[0] if host != "0.0.0.0" else f"http://127.0.0.1:{ui.port}/"
        status, body, headers = request(reach, "/api/status")
        assert status == 401 and "token" in body["error"]
        assert request(reach, "/api/note", {"note": 60, "velocity": 100})[0] == 401
        assert request(reach, "/api/status", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert session.engine.keyboard.velocity[0, 60] == 0
        assert request(reach, "/api/status", headers={"Authorization": f"Bearer {ui.token}"})[0] == 200
        status, _, headers = request(reach, f"/api/status?token={ui.token}")
        assert status == 200 and ui.token in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
        cookie = {"Cookie": f"timbrel_token={ui.token}"}
        assert request(reach, "/api/describe", headers=cookie)[0] == 200
        context = browser.new_context(viewport=LAPTOP)
        try:
            tab = context.new_page()
            tab.goto(reach + f"?token={ui.token}")
            expect(tab.locator("#current")).to_have_text(session.preset.name, timeout=10000)
            assert "token" not in tab.url
            tab.goto(reach)
            tab.wait_for_selector("#presets li.preset", timeout=10000)
            fresh_context = browser.new_context()
            try:
                response = fresh_context.new_page().goto(reach)
                assert response.status == 401
            finally:
                fresh_context.close()
        finally:
            context.close()
    finally:
        ui.close()
    assert not ui.running


def test_a_busy_port_is_refused_in_one_line(session, surface):
    with pytest.raises(TimbrelError, match=f"127.0.0.1:{surface.port}.*pick another --port"):
        serve(session, port=surface.port)
    assert request(surface.url, "/api/status")[0] == 200


def test_loopback_refuses_foreign_hosts_and_cross_site_changes(surface, fresh):
    url, port = surface.url, surface.port
    assert surface.token is None and "token" not in url
    assert request(url, "/api/status", headers={"Host": f"attacker.example:{port}"})[0] == 403
    assert request(url, "/api/status", headers={"Host": "127.0.0.1:1"})[0] == 403
    assert request(url, "/api/status", headers={"Host": f"localhost:{port}"})[0] == 200
    note = {"note": 61, "velocity": 100}
    assert request(url, "/api/note", note, headers={"Origin": "http://attacker.example"})[0] == 403
    assert request(url, "/api/note", note, headers={"Origin": f"http://127.0.0.1:{port + 1}"})[0] == 403
    assert request(url, "/api/note", note, headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert fresh.engine.keyboard.velocity[0, 61] == 0
    assert request(url, "/api/note", note, headers={"Origin": f"http://127.0.0.1:{port}"})[0] == 200
    assert wait_until(lambda: fresh.engine.keyboard.velocity[0, 61] > 0, timeout=2.0)
    assert request(url, "/api/note", {"note": 61, "velocity": 0})[0] == 200


def test_notes_from_a_surface_that_goes_quiet_are_released_within_a_second(surface, fresh):
    url = surface.url
    assert request(url, "/api/note", {"note": 62, "velocity": 100})[0] == 200
    assert wait_until(lambda: fresh.engine.keyboard.velocity[0, 62] > 0, timeout=2.0)
    for _ in range(8):  # a page holding the key says so four times a second
        time.sleep(0.25)
        assert request(url, "/api/heartbeat", {})[0] == 200
    assert fresh.engine.keyboard.velocity[0, 62] > 0
    went_quiet = time.monotonic()
    assert wait_until(lambda: fresh.engine.keyboard.velocity[0, 62] == 0, timeout=3.0)
    assert time.monotonic() - went_quiet < HEARTBEAT_TIMEOUT_S + 0.5


def test_the_panic_button_silences_every_channel_and_lifts_the_pedal(page, fresh):
    fresh.control_change(64, 127, channel=3)
    for channel, note in ((0, 60), (3, 64), (9, 67)):
        fresh.note_on(note, 90, channel)
    fresh.note_off(64, channel=3)
    assert wait_until(lambda: int((fresh.engine.keyboard.velocity > 0).sum()) == 3, timeout=2.0)
    page.click("#panic")
    assert wait_until(lambda: int((fresh.engine.keyboard.velocity > 0).sum()) == 0, timeout=2.0)
    assert not fresh.engine.keyboard.pedal.any()
    assert wait_until(lambda: fresh.engine.plugin.active_voices == 0, timeout=3.0)


# Real time --------------------------------------------------------------------------------------


def test_hammering_the_surface_leaves_sixteen_voices_on_time(page, session, surface, jack_server):
    notes = list(range(48, 80, 2))
    for note in notes:
        session.note_on(note, 90)
    assert wait_until(lambda: session.status()["voices"] == 16, timeout=3.0), session.status()
    seconds = 5.0
    with NoiseWitness() as witness:
        row = hammering(session, surface, seconds, 6, jack_server)
    rows = TIMES.snapshot()
    expect(page.locator("#stat-voices")).to_have_text("16", timeout=5000)
    for note in notes:
        session.note_off(note)
    report = (f"{row['requests']} requests in {seconds:g} s ({row['requests_per_s']:.0f}/s; {row['by_path']}), "
              f"{row['failed']} failed, {row['engine_requests']} reached the engine process; "
              f"engine: {row['blocks']} blocks in {row['seconds']:.1f} s, cpu load {row['mean_cpu_load']:.1%}, "
              f"{row['late_blocks']} late by CPU time, {row['late_blocks_wall_clock']} by the wall clock, "
              f"{row['engine_errors']} errors; stream xruns {row['stream_xruns']}, jackd xruns {row['jackd_xruns']}; "
              f"voices {row['voices']}")
    print("\n" + report)
    assert row["failed"] == 0, report
    assert row["requests"] > 500 and min(row["by_path"].values()) > 50, report
    assert row["engine_errors"] == 0, report
    assert_within_machine_allowance(row["late_blocks"], row["blocks"], rows, witness.seen, report)
    assert row["voices"] == 16, report
    assert row["blocks"] > 0.5 * row["seconds"] * SR / 128, report
    # The relay's contract, whatever the request rate: shared status and scope reads, batched
    # parameter writes and a description at most once a second (plus requests straddling the window).
    per_second = 2 / relay.SHARED_S + 1 / relay.BATCH_S + 1 / relay.DESCRIBE_MAX_AGE_S
    assert row["engine_requests"] <= per_second * row["seconds"] + 10, report


def test_the_static_files_ship_with_the_package():
    import timbrel.ui

    static = Path(timbrel.ui.__file__).parent / "static"
    assert {p.name for p in static.iterdir()} >= {"index.html", "app.js", "style.css"}


def test_expression_and_mpe_controls_have_cards_of_their_own_and_reach_the_engine(page, session):
    instrument = session.engine.plugin.instrument
    for heading, param in (("Expression", "style_amount"), ("Expression", "auto_vibrato_cents"), ("MPE", "mpe_lower")):
        expect(page.locator(f'section[data-group="{heading}"] [data-param="{param}"]')).to_be_visible()
    page.locator('[data-param="auto_vibrato_cents"] input[type=range]').focus()
    page.keyboard.press("End")
    assert wait_until(lambda: instrument.params.get("auto_vibrato_cents") == 100.0, timeout=5.0)


def test_an_ensemble_shows_its_parts_and_a_part_switches_preset_from_the_surface(page, session):
    multi = Multi(name="Duo", parts=[PartSpec(preset="violin", voices=4, settings={"midi_channel": 1.0}),
                                     PartSpec(preset="cello", voices=4, settings={"midi_channel": 2.0})])
    session.load_multi(multi, wait=True)
    assert session.wait_idle()
    ensemble = session.ensemble
    page.reload()
    expect(page.locator('section.part[data-part="2"]')).to_be_visible()
    expect(page.locator("#current")).to_have_text("Duo")
    page.locator('section.part[data-part="2"] [data-param="part2.mute"] button.choice[data-index="1"]').click()
    assert wait_until(lambda: ensemble.parts[1].params.get("mute") == 1.0, timeout=5.0)
    page.locator('[data-param="part1.volume_db"] input[type=range]').focus()
    page.keyboard.press("Home")
    assert wait_until(lambda: ensemble.parts[0].params.get("volume_db") == -60.0, timeout=5.0)
    session.note_on(60, channel=0)
    page.locator('select.part-preset[data-part="2"]').select_option("Bassoon")
    assert wait_until(lambda: ensemble.parts[1].name == "Bassoon", timeout=10.0)
    assert ensemble.parts[0].name == "Violin" and session.engine.keyboard.held_notes() == [(0, 60)]
    session.note_off(60, channel=0)
    expect(page.locator('select.part-preset[data-part="2"]')).to_have_value("Bassoon")
