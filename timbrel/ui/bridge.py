"""The engine process's side of the control surface: one thread that runs the server's requests.

Requests arrive over a `multiprocessing.connection.Connection` as `(request_id, command, args)`
and are answered with `(request_id, status, payload)`: status 200 and the result, or an HTTP
error status and a one-line message. Most commands are a few microseconds of Python (set a
float, push a MIDI event, copy the meters or the scope) and run on the bridge thread itself,
which otherwise sleeps in `recv` without the GIL. The few that wait (an audition or a mode
switch loading a model, saving a preset, listing or reopening devices) run on one worker
thread and answer when done, so the fast ones never queue behind them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection

from timbrel.engine.errors import TimbrelError
from timbrel.presets.preset import MODES

HEARTBEAT_TIMEOUT_S = 1.0
"""Notes played from the surface are released when no request has come from it for this long."""
WATCH_S = 0.2
SCOPE_MAX_SAMPLES = 8192
"""`timbrel.engine.realtime.host.SCOPE_SAMPLES`, written out: the server process imports this module, not the engine."""


class RequestError(TimbrelError):
    """A request the surface refuses: `status` is the HTTP status (4xx), the message one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def finite_number(value: object, what: str) -> float:
    """`value` as a float if it is a finite JSON number; else RequestError 400."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(400, f"{what} must be a finite number, not {value!r}")
    return float(value)


def whole_number(value: object, what: str, low: int, high: int) -> int:
    """`value` as an int within `low`..`high`; else RequestError 400."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(400, f"{what} must be a whole number from {low} to {high}, not {value!r}")
    return value


def text(value: object, what: str) -> str:
    """`value` if it is non-empty text; else RequestError 400."""
    if not isinstance(value, str) or not value.strip():
        raise RequestError(400, f"{what} must be non-empty text, not {value!r}")
    return value


class Bridge:
    """Serves `session` (an `timbrel.session.Session`) to the server process on `connection`.

    `start` runs the bridge thread; it ends when the other side closes the connection.
    """

    def __init__(self, session, connection: Connection):
        self.session = session
        self.connection = connection
        self._send_lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="timbrel-ui-worker")
        self._thread = threading.Thread(target=self._run, name="timbrel-ui-bridge", daemon=True)
        self.served = 0
        """Requests answered so far."""
        self._fast: dict[str, Callable[[dict], object]] = {
            "status": self._status, "describe": self._describe, "scope": self._scope,
            "parameters": self._set_parameters, "bypass": self._bypass, "note": self._note, "load": self._load,
            "heartbeat": self._heartbeat, "panic": self._panic,
        }
        self._notes_lock = threading.Lock()
        self._sounding: set[int] = set()
        """Notes the surface turned on and has not turned off."""
        self._heard = time.monotonic()
        self.released_by_watchdog = 0
        """Notes released because the surface went quiet while holding them."""
        self._watchdog = threading.Thread(target=self._watch, name="timbrel-ui-watchdog", daemon=True)
        self._slow: dict[str, Callable[[dict], object]] = {
            "audition": self._audition, "mode": self._mode, "save": self._save, "part": self._part,
            "devices": self._devices, "set_devices": self._set_devices,
        }

    def start(self) -> None:
        self._thread.start()
        self._watchdog.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the bridge thread to end (after the connection closed); drop queued slow commands."""
        self._thread.join(timeout)
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while True:
            try:
                request_id, command, args = self.connection.recv()
            except (EOFError, OSError):
                return
            except Exception:  # a garbled message: drop it, keep serving
                continue
            self._heard = time.monotonic()
            if command in self._slow:
                self._worker.submit(self._answer, request_id, self._slow[command], args)
            else:
                self._answer(request_id, self._fast.get(command), args)

    def _answer(self, request_id: int, handler: Callable[[dict], object] | None, args: dict) -> None:
        try:
            if handler is None:
                raise RequestError(404, "no such command")
            reply = (request_id, 200, handler(args))
        except RequestError as err:
            reply = (request_id, err.status, str(err))
        except TimbrelError as err:
            reply = (request_id, 400, str(err))
        except Exception as err:  # a fault of ours: report it in one line, keep serving
            reply = (request_id, 500, f"{type(err).__name__}: {err}")
        self.served += 1
        with self._send_lock:
            try:
                self.connection.send(reply)
            except (OSError, ValueError):
                pass

    # Fast commands (on the bridge thread) ----------------------------------------------------

    def _status(self, _args: dict) -> dict:
        session, engine = self.session, self.session.engine
        return session.status() | {"sample_rate": session.sample_rate, "block_size": session.block_size,
                                   "blocks": engine.blocks, "late_blocks_wall_clock": engine.late_blocks_wall_clock}

    def _describe(self, _args: dict) -> dict:
        session = self.session
        chain = session.engine.plugin
        state = {"preset": session.status()["preset"], "mode": session.mode,
                 "switches": session.switches, "instrument": None, "effects": []}
        return state | (chain.describe() if chain is not None else {})

    def _scope(self, args: dict) -> dict:
        samples = whole_number(args.get("samples", 2048), "samples", 16, SCOPE_MAX_SAMPLES)
        snapshot = self.session.engine.scope_snapshot(samples)
        return {"sample_rate": self.session.sample_rate, "samples": snapshot.tobytes()}

    def _chain(self):
        plugin = self.session.engine.plugin
        if plugin is None:
            raise RequestError(409, "no preset loaded")
        return plugin

    def _slot(self, key: str):
        slots = getattr(self._chain(), "slots", [])
        for slot in slots:
            if slot.key == key:
                return slot
        known = ", ".join(s.key for s in slots) or "none"
        raise RequestError(404, f"no effect '{key}' in this preset (effects: {known})")

    def _set_parameters(self, args: dict) -> dict:
        """`{"values": {id: value}}`: set each (the server process checked them against the last
        description); returns the ones refused, a line each."""
        values = args.get("values")
        if not isinstance(values, dict):
            raise RequestError(400, "values must map parameter ids to numbers")
        errors = []
        for parameter_id, value in values.items():
            try:
                self._set_parameter(parameter_id, value)
            except TimbrelError as err:
                errors.append(str(err))
        return {"errors": errors}

    def _set_parameter(self, parameter_id: object, value: object) -> float:
        parameter_id = text(parameter_id, "the parameter id")
        value = finite_number(value, f"the value of {parameter_id}")
        chain = self._chain()
        try:
            chain.parameter(parameter_id)
        except TimbrelError as err:
            raise RequestError(404, str(err)) from None
        return chain.set_parameter(parameter_id, value)

    def _bypass(self, args: dict) -> dict:
        key = text(args.get("key"), "the effect key")
        bypassed = args.get("bypassed")
        if not isinstance(bypassed, bool):
            raise RequestError(400, f"bypassed must be true or false, not {bypassed!r}")
        self._slot(key)
        self._chain().bypass(key, bypassed)
        return {"key": key, "bypassed": bypassed}

    def _note(self, args: dict) -> dict:
        note = whole_number(args.get("note"), "note", 0, 127)
        velocity = whole_number(args.get("velocity", 100), "velocity", 0, 127)
        with self._notes_lock:
            if velocity:
                self._sounding.add(note)
            else:
                self._sounding.discard(note)
        if velocity:
            self.session.note_on(note, velocity)
        else:
            self.session.note_off(note)
        return {"note": note, "velocity": velocity}

    def _heartbeat(self, _args: dict) -> dict:
        """The page is there and holds `sounding` keys (every request counts as a heartbeat)."""
        return {"sounding": sorted(self._sounding)}

    def _panic(self, _args: dict) -> dict:
        with self._notes_lock:
            self._sounding.clear()
        self.session.panic()
        return {"panic": True}

    def _watch(self) -> None:
        """Release the surface's notes when it has been silent for `HEARTBEAT_TIMEOUT_S` (a tab
        closed or a network gone while keys were down); ends with the bridge thread."""
        while self._thread.is_alive() or not self._thread.ident:
            time.sleep(WATCH_S)
            if self._sounding and time.monotonic() - self._heard > HEARTBEAT_TIMEOUT_S:
                with self._notes_lock:
                    stuck, self._sounding = sorted(self._sounding), set()
                for note in stuck:
                    try:
                        self.session.note_off(note)
                    except TimbrelError:
                        continue
                    self.released_by_watchdog += 1

    def _load(self, args: dict) -> dict:
        name = text(args.get("name"), "the preset name")
        self.session.load(name)
        return {"loading": name}

    # Slow commands (on the worker thread) ----------------------------------------------------

    def _audition(self, args: dict) -> dict:
        name = text(args.get("name"), "the preset name")
        self.session.audition(name)
        return {"auditioning": name}

    def _mode(self, args: dict) -> dict:
        mode = args.get("mode")
        if mode not in MODES:
            raise RequestError(400, f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.session.set_mode(mode, wait=True)
        return {"mode": self.session.mode}

    def _part(self, args: dict) -> dict:
        """`{"part": N (from 1), "preset": name}`: that part of the playing ensemble switches preset."""
        ensemble = self.session.ensemble
        if ensemble is None:
            raise RequestError(409, "no ensemble is playing (timbrel play --multi or --gm)")
        part = whole_number(args.get("part"), "part", 1, len(ensemble.parts))
        name = text(args.get("preset"), "the preset name")
        preset = self.session.switch_part(part - 1, name, wait=True).result()
        return {"part": part, "preset": preset.name}

    def _save(self, args: dict) -> dict:
        name = text(args.get("name"), "the preset name")
        force = args.get("force", False)
        if not isinstance(force, bool):
            raise RequestError(400, f"force must be true or false, not {force!r}")
        return {"name": name.strip(), "path": str(self.session.save(name, force=force))}

    def _devices(self, _args: dict) -> dict:
        stream = self.session.stream
        current = None if stream is None else {"output": stream.output_device, "input": stream.input_device}
        return self.session.devices() | {"current": current}

    def _set_devices(self, args: dict) -> dict:
        chosen = []
        for field in ("output", "input"):
            value = args.get(field)
            if value is not None and not isinstance(value, (str, int)) or isinstance(value, bool):
                raise RequestError(400, f"{field} must be a device name, an index or null, not {value!r}")
            chosen.append(value if value != "" else None)
        self.session.set_devices(*chosen)
        return self._devices({})
