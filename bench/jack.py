"""A private JACK dummy server for the live benchmarks."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DummyServer:
    """A running `jackd -d dummy`: its name (also in `JACK_DEFAULT_SERVER`) and its log."""

    name: str
    log: Path

    def xruns(self) -> int:
        """Xruns jackd has logged so far."""
        return self.log.read_text(errors="replace").count("XRun")


@contextmanager
def dummy_server(label: str, sample_rate: int, period: int) -> Iterator[DummyServer]:
    """Run `jackd --no-realtime -d dummy` (asynchronous, as a real session runs) while the block
    lasts; this process and its children connect to it. Exits naming jackd2 when it is missing."""
    if shutil.which("jackd") is None:
        sys.exit(f"{label}: jackd is missing (apt-get install jackd2)")
    name = f"timbrel-{label}-{secrets.token_hex(3)}"
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"
    log = Path(tempfile.mkdtemp()) / "jackd.log"
    with open(log, "wb") as handle:
        jackd = subprocess.Popen(["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", str(sample_rate),
                                  "-p", str(period)], stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(100):
            if subprocess.run(["jack_lsp"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        yield DummyServer(name, log)
    finally:
        portaudio = sys.modules.get("sounddevice")
        while portaudio is not None and portaudio._initialized:
            portaudio._terminate()
        jackd.terminate()
        jackd.wait(timeout=10)
