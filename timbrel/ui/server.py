"""The browser control surface: `serve(session)` and it runs until `close()`.

Why two processes. The audio callback runs Python and needs the GIL every block (2.67 ms
at 48 kHz with 128 samples). An HTTP server in threads of the same process would hold the
GIL while it parses requests, encodes JSON, searches presets or computes an FFT, and every
such stretch can make a block late. So the server runs in a process of its own
(`timbrel.ui.web`, started with `subprocess`), which does all of that, and reaches the engine
over a socket pair (`multiprocessing.connection`). In the engine process one bridge thread
(`timbrel.ui.bridge`) sleeps in `recv` without the GIL and runs each command against the
`Session`: a few microseconds of Python (set a float, push a MIDI event, copy the meters or
the last 2048 output samples, hand a preset load to the session's background loader).
Status and spectrum answers are shared between clients in the server process (at most 25
of each reach the engine per second), and the page sends at most ~60 parameter changes a
second per knob; the engine glides to each (no zipper noise).

Access: bound to loopback there is no token, requests must name the bound address in Host
(DNS rebinding) and changes must come from the surface's own page (Origin). Bound to any
other address, every request needs the random token in `url` (see `timbrel.ui.access`).

    ui = serve(session, host="0.0.0.0", port=8750)
    print(ui.url)        # http://192.168.1.20:8750/?token=...
    ui.close()
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from timbrel.engine.errors import TimbrelError
from timbrel.ui.access import is_loopback, url_host
from timbrel.ui.bridge import Bridge

START_TIMEOUT_S = 30.0


@dataclass
class ControlSurface:
    """A running control surface. `url` opens it (with `?token=` when one is needed); `token`
    is None on loopback; `port` is the one bound (useful with port 0)."""

    url: str
    token: str | None
    host: str
    port: int
    _process: subprocess.Popen = field(repr=False)
    _bridge: Bridge = field(repr=False)
    _connection: Connection = field(repr=False)

    @property
    def running(self) -> bool:
        """True while the server process runs."""
        return self._process.poll() is None

    @property
    def engine_requests(self) -> int:
        """Requests the bridge has answered so far (the engine process's share of the work)."""
        return self._bridge.served

    def close(self) -> None:
        """Stop the server process and the bridge thread. Idempotent."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._bridge.join(timeout=5)
        self._connection.close()


def serve(session, host: str = "127.0.0.1", port: int = 8750) -> ControlSurface:
    """Start the control surface for `session` (an `timbrel.session.Session`) on `host`:`port`
    (port 0: any free one). Returns once it accepts connections; TimbrelError in one line when
    it cannot listen there."""
    token = None if is_loopback(host) else secrets.token_urlsafe(24)
    ours, theirs = socket.socketpair()
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    with theirs:
        process = subprocess.Popen([sys.executable, "-m", "timbrel.ui.web", str(theirs.fileno())],
                                   pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env, cwd=root)
    connection = Connection(ours.detach())
    try:
        library = session.library
        connection.send({"host": host, "port": int(port), "token": token,
                         "factory_dir": str(library.factory_dir), "user_dir": str(library.user_dir)})
        if not connection.poll(START_TIMEOUT_S):
            raise TimbrelError(f"the control surface did not start within {START_TIMEOUT_S:g} s")
        state, detail = connection.recv()
    except (EOFError, OSError) as err:
        state, detail = "failed", f"the control surface stopped at start ({err or 'no answer'})"
    except TimbrelError as err:
        state, detail = "failed", str(err)
    if state != "ready":
        process.kill()
        process.wait()
        connection.close()
        raise TimbrelError(detail)
    bound = int(detail)
    bridge = Bridge(session, connection)
    bridge.start()
    shown = _reachable_address() if host in ("0.0.0.0", "::", "") else host
    url = f"http://{url_host(shown)}:{bound}/" + (f"?token={token}" if token else "")
    return ControlSurface(url, token, host, bound, process, bridge, connection)


def _reachable_address() -> str:
    """This machine's address on its default route (no packet is sent), else its host name."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostname()
