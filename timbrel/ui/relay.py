"""The server process's side of the link to the engine: requests, shared reads, coalesced writes.

However many clients poll and however fast knobs move, the engine process answers at most
1 / `SHARED_S` status and scope requests a second each, one parameter batch per `BATCH_S`,
and a description only when the preset, the mode or a bypass changed (or it is older than
`DESCRIBE_MAX_AGE_S`). Parameter changes are checked here against the last description
(unknown id: 404; NaN, infinite or out of range: 400), answered at once, and the latest
value per parameter goes to the engine with the next batch. Notes, preset loads and the
rest go through as they come.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import os
import threading
import time
from multiprocessing.connection import Connection

from timbrel.ui.bridge import RequestError

SHARED_S = 0.04
BATCH_S = 0.01
DESCRIBE_MAX_AGE_S = 1.0
FAST_TIMEOUT_S = 5.0
SLOW_TIMEOUT_S = 120.0


class EngineLink:
    """Requests to the engine process's bridge, from any number of threads at once."""

    def __init__(self, connection: Connection):
        self._connection = connection
        self._send_lock = threading.Lock()
        self._pending: dict[int, list] = {}
        self._ids = itertools.count(1)
        self._reader = threading.Thread(target=self._read, name="engine-link", daemon=True)

    def start(self) -> None:
        self._reader.start()

    def call(self, command: str, args: dict | None = None, timeout: float = FAST_TIMEOUT_S):
        """The bridge's answer to `command`; RequestError carries its refusals."""
        request_id = next(self._ids)
        slot = [threading.Event(), None]
        self._pending[request_id] = slot
        try:
            with self._send_lock:
                self._connection.send((request_id, command, args or {}))
            if not slot[0].wait(timeout):
                raise RequestError(504, f"the engine did not answer '{command}' within {timeout:g} s")
        finally:
            self._pending.pop(request_id, None)
        status, payload = slot[1]
        if status != 200:
            raise RequestError(status, payload)
        return payload

    def _read(self) -> None:
        """Hand each answer to its caller; exit the process when the engine process is gone."""
        while True:
            try:
                request_id, status, payload = self._connection.recv()
            except (EOFError, OSError):
                os._exit(0)
            slot = self._pending.get(request_id)
            if slot is not None:
                slot[1] = (status, payload)
                slot[0].set()


class Relay:
    """What the HTTP handlers ask of the engine, with reads shared and parameter writes coalesced."""

    def __init__(self, link: EngineLink):
        self.link = link
        self._lock = threading.Lock()
        self._fetching = {command: threading.Lock() for command in ("status", "scope", "describe")}
        self._reads: dict[str, tuple[float, object]] = {}
        self._described: dict | None = None
        self._described_at = -1e9
        self._table: dict[str, dict] = {}
        self._pending: dict[str, float] = {}
        self._in_flight: dict[str, float] = {}
        self._wake = threading.Event()
        """The latest batch's refusals by the engine (a parameter gone with a preset switch, say)."""
        threading.Thread(target=self._send_batches, name="parameter-batches", daemon=True).start()

    def call(self, command: str, args: dict | None = None, timeout: float = FAST_TIMEOUT_S):
        """Pass `command` through; one that changes the preset's layout marks the description stale."""
        result = self.link.call(command, args, timeout)
        if command in ("load", "mode", "bypass", "audition"):
            self.stale()
        return result

    def stale(self) -> None:
        """Fetch the description afresh next time."""
        with self._lock:
            self._described = None

    def _shared(self, command: str, args: dict | None = None):
        """The engine's answer to `command`, asked at most once per SHARED_S (one caller asks, the rest wait)."""
        with self._fetching[command]:
            at, value = self._reads.get(command, (-1e9, None))
            if time.monotonic() - at > SHARED_S:
                value = self.link.call(command, args)
                self._reads[command] = (time.monotonic(), value)
            return value

    def status(self) -> dict:
        """The session's meters (`Session.status` and the engine's block counts), at most SHARED_S old."""
        status = self._shared("status")
        with self._lock:
            if self._described is not None and self._described.get("switches") != status.get("switches"):
                self._described = None
        return status

    def scope(self) -> dict:
        """`{"sample_rate", "samples"}`: the latest 2048 output samples as float32 bytes, at most SHARED_S old."""
        return self._shared("scope", {"samples": 2048})

    def describe(self) -> dict:
        """The preset, mode, and every parameter with its range, unit and current value."""
        with self._fetching["describe"]:
            with self._lock:
                if self._described is not None and time.monotonic() - self._described_at <= DESCRIBE_MAX_AGE_S:
                    return copy.deepcopy(self._described)
            described = self.link.call("describe")
            table = {p["id"]: p for p in described.get("instrument") or []}
            for effect in described.get("effects", []):
                table.update({f"{effect['key']}.{p['id']}": p for p in effect["parameters"]})
            for part in described.get("parts", []):
                table.update({p["id"]: p for p in part["parameters"]})
            with self._lock:
                for parameter_id, value in {**self._in_flight, **self._pending}.items():
                    if parameter_id in table:
                        table[parameter_id]["value"] = value
                self._described, self._described_at, self._table = described, time.monotonic(), table
                return copy.deepcopy(described)

    def set_parameter(self, parameter_id: str, value: float) -> dict:
        """Check `value` for `parameter_id` (`PARAM` or `KEY.PARAM`) and queue it; returns it as set."""
        if not math.isfinite(value):
            raise RequestError(400, f"the value of {parameter_id} must be a finite number, not {value!r}")
        with self._lock:
            table = self._table if self._described is not None else None
        if table is None:
            self.describe()
            with self._lock:
                table = self._table
        parameter = table.get(parameter_id)
        if parameter is None:
            key, dot, _ = parameter_id.rpartition(".")
            siblings = [i for i in table if i.rpartition(".")[0] == key]
            where = (f"effect '{key}' has" if siblings else f"no effect '{key}'; effects:") if dot else "instrument has"
            known = siblings or sorted({i.partition(".")[0] for i in table if "." in i})
            raise RequestError(404, f"no parameter '{parameter_id}' (this preset's {where} {', '.join(known)})")
        low, high = parameter["minimum"], parameter["maximum"]
        if not low <= value <= high:
            unit = f" {parameter['unit']}" if parameter["unit"] else ""
            raise RequestError(400, f"{parameter_id}: {value:g} is outside {low:g} to {high:g}{unit}")
        if parameter["choices"]:
            value = float(round(value))
        with self._lock:
            parameter["value"] = value
            self._pending[parameter_id] = value
        self._wake.set()
        return {"id": parameter_id, "value": value}

    def _send_batches(self) -> None:
        """At most one batch per BATCH_S: the latest value of each parameter changed since the last."""
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, {}
                self._in_flight = batch
            if not batch:
                continue
            with contextlib.suppress(RequestError):
                self.link.call("parameters", {"values": batch})
            with self._lock:
                self._in_flight = {}
            time.sleep(BATCH_S)
