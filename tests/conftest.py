"""Shared fixtures.

`jack_server`: a private JACK server (dummy backend, no sound card needed) for live I/O tests.
`jack_peer`: a JACK client that sends MIDI and records audio, playing the outside world.
"""

from __future__ import annotations

import collections
import json
import math
import os
import secrets
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from bench.cpu_noise import Witnessed

from timbrel.engine.numba_cache import configure_numba_cache

# The suite is an entry point: numba's cache goes to the user's cache folder, keyed by the
# kernels' sources, before any test module imports a kernel.
configure_numba_cache()


MACHINE_CHARGED_PER_MINUTE = 3.0
"""Blocks a minute that this kind of machine makes late by CPU time whatever runs in them.
`python -m bench.cpu_noise` runs one fixed 400 µs loop per block period and times it by its
own CPU time: 5 wake-ups over a whole block in 120 s, 3 in 90 s (BENCHMARKS.md). The kernel
(a Firecracker VM, CONFIG_IRQ_TIME_ACCOUNTING off) charges interrupt time to the running
thread, so the engine's own-CPU-time clock sees those blocks too."""


def machine_allowance(blocks: int, sample_rate: int = 48000, block: int = 128, witnessed: float = 0.0) -> int:
    """Late blocks (by the engine's CPU time) over `blocks` blocks that the machine alone
    explains, plus 2: its expected count at `MACHINE_CHARGED_PER_MINUTE`, or what a
    `bench.cpu_noise.NoiseWitness` running beside the test saw it charge (`witnessed`, from
    `Witnessed.explains`), whichever is more. At the long-run rate a run of 15 s exceeds the
    allowance about once in a hundred; an engine fault (every switch, say) exceeds it at once."""
    minutes = blocks * block / sample_rate / 60.0
    return int(max(MACHINE_CHARGED_PER_MINUTE * minutes, math.ceil(witnessed))) + 2


def assert_within_machine_allowance(late_blocks: int, blocks: int, rows: np.ndarray, seen: Witnessed,
                                    report: str = "") -> None:
    """Assert that `late_blocks` (by the engine's CPU time, over `blocks` blocks, whose stage
    rows are `rows` from `TIMES.snapshot`) are no more than the machine explains
    (`machine_allowance`, with what the noise witness `seen` saw meanwhile). A failure prints
    `report`, the witness's figures and every late block stage by stage, whole."""
    from bench.cpu_noise import BLOCK_US
    from timbrel.engine.realtime.stages import CPU, describe

    explained = seen.explains(rows)
    late = rows[rows[:, CPU] / 1e3 > BLOCK_US]
    stages = "\n".join(describe(row) for row in late[:10])
    assert late_blocks <= machine_allowance(blocks, witnessed=explained), (
        f"{report}\nthe machine explains {explained:.1f}; {len(late)} blocks late by CPU time:\n{stages}\n"
        + seen.describe())


@dataclass(frozen=True)
class JackServer:
    """A running jackd: its server name (also in `JACK_DEFAULT_SERVER`), rate in Hz, period in samples."""

    name: str
    sample_rate: int
    period: int
    log: Path

    def xruns(self) -> int:
        """Xruns jackd has logged so far (each one is also signalled to every client)."""
        return self.log.read_text(errors="replace").count("XRun")


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@pytest.fixture(scope="session")
def jack_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JackServer]:
    """Start `jackd --no-realtime -S -n <unique> -d dummy -r 48000 -p 128` for the session; stop it after.

    `-S` (synchronous mode) makes the server wait for every client each cycle, so a client
    that the shared CPU makes late delays the cycle instead of losing its block: the tests
    see exactly the audio the code produced. While the server runs, `JACK_DEFAULT_SERVER`
    names it, so every JACK client of this process and its children (PortAudio, rtmidi, the
    `jack` module, jack_lsp) connects to it, and `JACK_NO_START_SERVER` keeps libjack from
    starting a stray default server. jackd is sent SIGTERM should pytest die without
    tearing down (setpriv --pdeathsig). A missing jackd fails the test, naming the package.
    """
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.fail("jackd is not installed: the live I/O tests need the Debian package jackd2 "
                    "(apt-get install jackd2)", pytrace=False)
    if shutil.which("jack_lsp") is None:
        pytest.fail("jack_lsp is not installed: install the Debian package jackd2 (apt-get install jackd2)",
                    pytrace=False)
    rate, period = 48000, 128
    name = f"timbrel-test-{os.getpid()}-{secrets.token_hex(3)}"
    log = tmp_path_factory.mktemp("jack") / "jackd.log"
    saved = {key: os.environ.get(key) for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"
    command = [jackd, "--no-realtime", "-S", "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)]
    setpriv = shutil.which("setpriv")
    if setpriv:
        command = [setpriv, "--pdeathsig", "TERM", *command]
    with open(log, "wb") as out:
        server = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15.0
        while True:
            if server.poll() is not None:
                pytest.fail(f"jackd exited with status {server.returncode} at start:\n{_log_tail(log)}", pytrace=False)
            probe = subprocess.run(["jack_lsp"], capture_output=True, timeout=10)
            if probe.returncode == 0 and b"system:playback_1" in probe.stdout:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"jackd {name} did not accept clients within 15 s:\n{_log_tail(log)}", pytrace=False)
            time.sleep(0.1)
        yield JackServer(name, rate, period, log)
    finally:
        portaudio = _release_portaudio()
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if portaudio is not None:
            portaudio._initialize()


def _release_portaudio():
    """Terminate PortAudio while the server still runs, and return sounddevice to re-initialise it after.

    PortAudio's JACK host API keeps a client open from initialisation on; terminating it once
    its server is gone fails an assertion in pa_jack.c and aborts the interpreter at exit.
    """
    portaudio = sys.modules.get("sounddevice")
    if portaudio is None:
        return None
    while portaudio._initialized:
        portaudio._terminate()
    return portaudio


def _jack_module():
    try:
        import jack
    except ImportError:
        pytest.fail("the live I/O tests need the JACK-Client package: pip install JACK-Client", pytrace=False)
    return jack


class JackPeer:
    """A JACK client standing in for the outside world, in its own process: MIDI out, audio in
    (and, for live transfer, a singer and a synth: audio out `sing`, MIDI in `in`).

    It runs in a child process (`python tests/conftest.py --peer`), driven over a pipe, so
    its Python process callback never competes for this process's GIL. Otherwise
    python-rtmidi, which holds the GIL while the server handles its requests, would stall
    the server in waiting for that callback, and the two Python callbacks (the peer's and
    PortAudio's) would make each other late. It starts with a MIDI output `out` and audio
    inputs `in_1`, `in_2`. `send` returns once the process cycle has written the messages,
    in order, at increasing offsets. Recording fills a preallocated float32
    `[channels, samples]` buffer. Port listing and connections go through a second,
    never-activated client in this process (it has no threads that need the GIL).
    """

    def __init__(self, server: JackServer, name: str, workdir: Path):
        jack = _jack_module()
        self._workdir = workdir
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--peer", name, server.name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        hello = self._reply(timeout=20.0)
        self.name: str = hello["name"]
        self.sample_rate: int = hello["sample_rate"]
        self.inspector = jack.Client(f"{self.name}-inspect", no_start_server=True, servername=server.name)

    def _reply(self, timeout: float) -> dict:
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if ready else ""
        if not line:
            self._process.kill()
            raise RuntimeError(f"the JACK peer did not answer within {timeout} s")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"JACK peer: {reply['error']}")
        return reply

    def _call(self, command: str, timeout: float = 5.0, **args) -> dict:
        self._process.stdin.write(json.dumps({"command": command, **args}) + "\n")
        self._process.stdin.flush()
        return self._reply(timeout)

    def send(self, *messages: bytes | list[int], port: str = "out") -> list[int]:
        """Write raw MIDI messages on output `port` (short name) in the next cycle; wait until written.

        Returns, per message, the sample of the current recording at which it was written
        (-1 when not recording), so tests can time what the other side did with it.
        """
        return self._call("send", port=port, messages=[list(bytes(m)) for m in messages])["at"]

    def add_midi_output(self, short_name: str) -> str:
        """Register another MIDI output port while running; returns its full name."""
        return self._call("add", port=short_name)["name"]

    def remove_midi_output(self, short_name: str) -> None:
        self._call("remove", port=short_name)

    def sing(self, audio: np.ndarray) -> int:
        """Play mono `audio` on output `sing` from the next cycle; returns its first sample's JACK frame time."""
        path = self._workdir / f"{self.name}-sing-{secrets.token_hex(3)}.npy"
        np.save(path, np.asarray(audio, dtype=np.float32))
        return self._call("sing", timeout=10.0, path=str(path))["at"]

    def singing(self) -> bool:
        return self._call("singing")["singing"]

    def received(self) -> list[tuple[int, list[int]]]:
        """MIDI received on `in` so far: `(JACK frame time, bytes)` each, oldest first."""
        return [(at, data) for at, data in self._call("received")["events"]]

    def start_recording(self, seconds: float) -> None:
        self._call("record", seconds=seconds)

    def recorded(self) -> int:
        """Samples recorded so far."""
        return self._call("recorded")["samples"]

    def stop_recording(self) -> np.ndarray:
        """The audio recorded so far on `in_1`, `in_2`: float32 `[2, samples]`."""
        path = self._workdir / f"{self.name}-{secrets.token_hex(3)}.npy"
        self._call("stop", path=str(path))
        return np.load(path)

    def connect(self, source: str, destination: str) -> None:
        self.inspector.connect(source, destination)

    def connect_midi_to(self, destination: str, port: str = "out") -> None:
        self.connect(f"{self.name}:{port}", destination)

    def connect_audio_from(self, sources: list[str]) -> None:
        for i, source in enumerate(sources):
            self.connect(source, f"{self.name}:in_{i + 1}")

    def ports(self, **kwargs) -> list[str]:
        """Names of ports on the server (`jack.Client.get_ports` filters)."""
        return [p.name for p in self.inspector.get_ports(**kwargs)]

    def connections(self, port: str) -> list[str]:
        return [p.name for p in self.inspector.get_all_connections(port)]

    def close(self) -> None:
        try:
            self._call("quit")
            self._process.wait(timeout=5)
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        self.inspector.close()


def _peer_main(name: str, server: str) -> None:
    """The child side of `JackPeer`: one JSON command per line on stdin, one JSON reply per line on stdout."""
    import jack

    client = jack.Client(name, no_start_server=True, servername=server)
    midi_outs = {"out": client.midi_outports.register("out")}
    audio_ins = [client.inports.register(f"in_{i + 1}") for i in range(2)]
    singer = client.outports.register("sing")
    midi_in = client.midi_inports.register("in")
    song = {"buffer": np.zeros(0, dtype=np.float32), "position": 0, "armed": False, "at": -1}
    heard: list[tuple[int, list[int]]] = []
    pending: collections.deque[tuple[str, bytes]] = collections.deque()
    recording = {"buffer": np.zeros((2, 0), dtype=np.float32), "filled": 0, "armed": False}
    written_at: list[int] = []

    @client.set_process_callback
    def process(frames: int) -> None:
        now = client.last_frame_time
        for offset, data in midi_in.incoming_midi_events():
            heard.append((now + offset, list(bytes(data))))
        voice = singer.get_array()
        voice[:] = 0.0
        if song["armed"]:
            if song["at"] < 0:
                song["at"] = now
            start = song["position"]
            n = min(frames, song["buffer"].shape[0] - start)
            voice[:n] = song["buffer"][start : start + n]
            song["position"] = start + n
            song["armed"] = song["position"] < song["buffer"].shape[0]
        outs = dict(midi_outs)
        for port in outs.values():
            port.clear_buffer()
        offset = 0
        while pending:
            port, message = pending.popleft()
            if port in outs:
                outs[port].write_midi_event(min(offset, frames - 1), message)
            written_at.append(recording["filled"] + min(offset, frames - 1) if recording["armed"] else -1)
            offset += 1
        if recording["armed"]:
            buffer, start = recording["buffer"], recording["filled"]
            n = min(frames, buffer.shape[1] - start)
            for channel, port in enumerate(audio_ins):
                buffer[channel, start : start + n] = port.get_array()[:n]
            recording["filled"] = start + n

    client.activate()
    print(json.dumps({"name": client.name, "sample_rate": client.samplerate}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        command = request["command"]
        reply = {}
        try:
            if command == "send":
                written_at.clear()
                for message in request["messages"]:
                    pending.append((request["port"], bytes(message)))
                while len(written_at) < len(request["messages"]):
                    time.sleep(0.001)
                reply["at"] = list(written_at)
            elif command == "add":
                midi_outs[request["port"]] = port = client.midi_outports.register(request["port"])
                reply["name"] = port.name
            elif command == "remove":
                midi_outs.pop(request["port"]).unregister()
            elif command == "record":
                recording["armed"] = False
                recording["buffer"] = np.zeros((2, int(request["seconds"] * client.samplerate)), np.float32)
                recording["filled"] = 0
                recording["armed"] = True
            elif command == "sing":
                song["armed"] = False
                song["buffer"] = np.load(request["path"]).astype(np.float32)
                song["position"], song["at"] = 0, -1
                song["armed"] = True
                while song["at"] < 0:
                    time.sleep(0.001)
                reply["at"] = song["at"]
            elif command == "singing":
                reply["singing"] = song["armed"]
            elif command == "received":
                reply["events"] = list(heard)
            elif command == "recorded":
                reply["samples"] = recording["filled"]
            elif command == "stop":
                recording["armed"] = False
                time.sleep(0.01)
                np.save(request["path"], recording["buffer"][:, : recording["filled"]])
        except Exception as err:
            reply = {"error": f"{command}: {err!r}"}
        print(json.dumps(reply), flush=True)
        if command == "quit":
            break
    client.deactivate()
    client.close()


def wait_until(condition: Callable[[], bool], timeout: float = 2.0, interval: float = 0.01) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return bool(condition())
        time.sleep(interval)
    return True


@pytest.fixture
def jack_peer(jack_server: JackServer, tmp_path: Path) -> Iterator[JackPeer]:
    """A fresh `JackPeer` on the session's JACK server, closed afterwards."""
    peer = JackPeer(jack_server, f"peer-{secrets.token_hex(2)}", tmp_path)
    try:
        yield peer
    finally:
        peer.close()


if __name__ == "__main__" and sys.argv[1:2] == ["--peer"]:
    _peer_main(sys.argv[2], sys.argv[3])
