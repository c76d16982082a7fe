"""A live performance: the engine, its audio and MIDI I/O, and the preset being played.

`Session` is the control side that `timbrel play` and the web UI drive. It never runs on
the audio thread. Switching presets loads the model and prepares the whole chain on a
background thread, then hands it to the engine, which swaps at a block boundary with a
20 ms crossfade while held notes and the pedal carry over; until then, and if the new
preset fails to load, the old one keeps playing. A MIDI program change N selects the Nth
preset of the library (factory first), the way a keyboard's patch buttons would.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, replace

from timbrel.audition import play_audition, polyphonic
from timbrel.engine.errors import TimbrelError
from timbrel.engine.io.audio import AudioStream, list_audio_devices
from timbrel.engine.io.midi import MidiInput, list_midi_inputs
from timbrel.engine.io.midi_out import MidiOutput
from timbrel.engine.realtime.events import CONTROL_CHANGE, NOTE_OFF, NOTE_ON, PROGRAM_CHANGE
from timbrel.engine.realtime.host import Engine
from timbrel.engine.realtime.outbox import MidiOutbox
from timbrel.model_cache import ModelCache
from timbrel.plugin.ensemble import Ensemble
from timbrel.presets.build import build_chain
from timbrel.presets.gm import DRUM_CHANNEL
from timbrel.presets.library import Library
from timbrel.presets.model_files import model_path
from timbrel.presets.multi import Multi, build_ensemble
from timbrel.presets.preset import MODES, EffectSettings
from timbrel.presets.settings import apply_settings
from timbrel.presets.song import DRUMS_SKIPPED, play_program
from timbrel.program_watcher import ProgramWatcher
from timbrel.runtime_policy import RealtimePolicy

LOADER_NICENESS = 10


def _background() -> None:
    """Lower the calling thread's CPU priority, so preparing a preset yields the cores to the audio thread."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICENESS)
    except (AttributeError, OSError):
        pass


class Session:
    """Owns an `Engine`, an `AudioStream` and a `MidiInput`, and loads presets into them.

    `library`: a `timbrel.presets.library.Library` (default: the factory and user presets). Audio
    and MIDI open in `start`; the engine alone can be driven without them (tests, renders).
    `start` enters the `RealtimePolicy` (switch interval, garbage collector) and `stop` leaves it.
    """

    def __init__(self, library: Library | None = None, sample_rate: int = 48000, block_size: int = 128,
                 voices: int = 16, max_block: int = 2048):
        self.library = library if library is not None else Library()
        self.sample_rate = int(sample_rate)
        self.block_size = int(block_size)
        self.voices = int(voices)
        self.engine = Engine(self.sample_rate, max(max_block, self.block_size))
        self.stream = None
        self.midi = None
        self.midi_out: MidiOutput | None = None
        """The `timbrel-pitch` port: MIDI out of the tracked pitch, open when `start` is asked for it."""
        self._pitch_listened = False
        """Whether transfer instruments loaded now write MIDI out (someone asked for the port)."""
        self.preset = None
        self.mode = "midi"
        self.last_error = ""
        """The latest control-side fault, one line (a preset that failed to load, say)."""
        self.notices: list[str] = []
        """Things worth saying once, one line each: a model played from MIDI without a playing style."""
        self.switches = 0
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="timbrel-loader", initializer=_background)
        self._lock = threading.Lock()
        self.policy = RealtimePolicy()
        self.models = ModelCache()
        """Models loaded so far, reused when a preset of the same model is loaded again."""
        self._watcher: ProgramWatcher | None = None
        self.multi: Multi | None = None
        """The ensemble playing (`load_multi`), else None."""
        self.ensemble: Ensemble | None = None
        self.gm = False
        """Whether program changes choose parts' presets by the General MIDI map (`timbrel play --gm`)."""

    # Presets ------------------------------------------------------------------------------

    def load(self, name: str, mode: str | None = None, wait: bool = False,
             settings: Mapping[str, str | float] | None = None) -> Future:
        """Switch to preset `name` (optionally in `mode`, with `--set` style `settings` applied):
        built off the audio thread, then swapped.

        Returns a Future holding the preset; with `wait` blocks until the engine has it. A
        fault leaves the current sound playing, sets `last_error` and is raised from the
        Future (TimbrelError, one line).
        """
        if mode is not None and mode not in MODES:
            raise TimbrelError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        future = self._loader.submit(self._load, name, mode, dict(settings or {}))
        if wait:
            future.result()
        return future

    def _load(self, name: str, mode: str | None, settings: dict[str, str | float]):
        try:
            preset = self.library.get(name)
            if settings:
                preset = replace(apply_settings(preset, settings), path=preset.path, factory=preset.factory)
            chosen = mode or (self.mode if self.preset is not None else preset.mode)
            model = self.models.get(model_path(preset), preset.model_sha256)
            chain = build_chain(preset, chosen, voices=self.voices, model=model)
            outbox = getattr(chain.instrument, "outbox", None)
            if outbox is not None:
                outbox.listened = self._pitch_listened
            self.notices.extend(note for note in preset.notes if note not in self.notices)
            plain = f"{model.info.name}: its model has no playing style, so notes play plainly " \
                    f"(`timbrel style {model.path.name} RECORDINGS` learns one)"
            if chosen == "midi" and not model.info.style and plain not in self.notices:
                self.notices.append(plain)
            unfit = f"{model.info.name}: {model.info.unfit_note}"
            if model.info.unfit_note and unfit not in self.notices:
                self.notices.append(unfit)
            self.engine.load(chain, before_swap=self.policy.settle)
            stream = self.stream
            if chosen == "transfer" and stream is not None and stream.input_device is None:
                self.set_devices(stream.output_device, None, use_input=True)
        except TimbrelError as err:
            self.last_error = str(err)
            raise
        except Exception as err:  # a broken third-party effect, say: report it, keep playing
            self.last_error = f"{name}: {type(err).__name__}: {err}"
            raise TimbrelError(self.last_error) from None
        with self._lock:
            self.preset, self.mode = preset, chosen
            self.multi = self.ensemble = None
            self.switches += 1
        return preset

    def load_multi(self, multi: Multi, wait: bool = False) -> Future:
        """Play the ensemble `multi` (built off the audio thread, then swapped in as a preset is).
        Program changes then switch the preset of the part on their channel (by the General MIDI
        map when `gm`, else the Nth preset of the library). Faults leave what plays playing."""
        future = self._loader.submit(self._load_multi, multi)
        if wait:
            future.result()
        return future

    def _load_multi(self, multi: Multi) -> Multi:
        try:
            ensemble = build_ensemble(multi, self.library, self.models)
            self.engine.load(ensemble, before_swap=self.policy.settle)
        except TimbrelError as err:
            self.last_error = str(err)
            raise
        with self._lock:
            self.multi, self.ensemble, self.mode = multi, ensemble, "midi"
            self.switches += 1
        return multi

    def switch_part(self, part: int | str, name: str, wait: bool = False) -> Future:
        """Have one part of the playing ensemble play preset `name`; the other parts play on."""
        future = self._loader.submit(self._switch_part, part, name)
        if wait:
            future.result()
        return future

    def _switch_part(self, part: int | str, name: str):
        ensemble = self.ensemble
        try:
            if ensemble is None:
                raise TimbrelError("no ensemble is playing (timbrel play --multi or --gm)")
            index = ensemble.part_index(part)
            preset = self.library.get(name)
            model = self.models.get(model_path(preset), preset.model_sha256)
            voices = ensemble.parts[index].chain.instrument.voices
            ensemble.switch_part(index, build_chain(preset, "midi", voices=voices, model=model), preset.name)
        except TimbrelError as err:
            self.last_error = str(err)
            raise
        self.switches += 1
        return preset

    def _on_program(self, number: int, channel: int) -> None:
        """A program change (`number` 0 to 127) on `channel` (0 to 15). With an ensemble playing it
        switches the part on that channel: by the General MIDI map in a `--gm` session
        (`presets.song.play_program`; drums are left alone), else to the library's Nth preset.
        Otherwise it selects the library's Nth preset, whatever the channel."""
        ensemble = self.ensemble
        if ensemble is None:
            self._switch_to_program(number)
            return
        if self.gm and channel == DRUM_CHANNEL:
            return
        for index, part in enumerate(ensemble.parts):
            if int(part.params.get("midi_channel")) != channel + 1:
                continue
            if self.gm:
                self._loader.submit(self._guarded, play_program, ensemble, index, number, self.library, self.models)
            else:
                presets = self.library.list()
                if number < len(presets):
                    self.switch_part(index, presets[number].name)

    def _guarded(self, work, *args) -> None:
        """Run `work(*args)` on the loader thread; a fault is kept in `last_error`, one line."""
        try:
            work(*args)
        except TimbrelError as err:
            self.last_error = str(err)

    def set_mode(self, mode: str, wait: bool = False) -> Future:
        """Play the current preset from the keyboard ("midi") or the microphone ("transfer");
        transfer reopens the audio with the default input when none is open."""
        if self.preset is None:
            raise TimbrelError("no preset loaded")
        return self.load(self.preset.name, mode, wait=wait)

    def current_settings(self):
        """The current preset with the values now set on the instrument and effects (to save)."""
        chain = self.engine.plugin
        if self.ensemble is not None:
            raise TimbrelError(f"{self.multi.name} is an ensemble: its parts play presets of their own "
                               "(a multi file is saved with `timbrel multis save`)")
        if self.preset is None or chain is None:
            raise TimbrelError("no preset loaded")
        values = chain.instrument.params.as_dict()
        effects = [EffectSettings(type=s.effect.effect_type, bypass=s.bypassed, parameters=s.effect.params.as_dict())
                   for s in chain.slots]
        for index, effect in enumerate(self.preset.effects):
            if effect.missing:  # an LV2 plugin not installed here: kept, where it was, for a machine that has it
                effects.insert(min(index, len(effects)), effect)
        fields = {"midi": values} if self.mode == "midi" else {"transfer": values}
        return replace(self.preset, mode=self.mode, effects=effects, **fields)

    def save(self, name: str, force: bool = False):
        """Save the current settings as user preset `name`; returns its path."""
        return self.library.save(self.current_settings(), name, force=force)

    # Playing ------------------------------------------------------------------------------

    def set_parameter(self, parameter_id: str, value: float) -> float:
        """`PARAM` on the instrument or `KEY.PARAM` on an effect; returns the clamped value."""
        return self.engine.set_parameter(parameter_id, value)

    def note_on(self, note: int, velocity: int = 100, channel: int = 0) -> None:
        """Play a note as if from a MIDI keyboard (on-screen keys, auditions)."""
        self._push(NOTE_ON | (channel & 15) | (note & 127) << 8 | max(1, velocity & 127) << 16)

    def note_off(self, note: int, channel: int = 0) -> None:
        self._push(NOTE_OFF | (channel & 15) | (note & 127) << 8)

    def control_change(self, controller: int, value: int, channel: int = 0) -> None:
        """Send a MIDI controller as if from a keyboard (64: sustain pedal, 123: all notes off)."""
        self._push(CONTROL_CHANGE | (channel & 15) | (controller & 127) << 8 | (value & 127) << 16)

    def program_change(self, program: int, channel: int = 0) -> None:
        """Send a MIDI program change (0 to 127) as if from a keyboard: it switches the preset, or,
        in an ensemble, the preset of the part on `channel` (0 to 15)."""
        self._push(PROGRAM_CHANGE | (channel & 15) | (program & 127) << 8)

    def panic(self) -> None:
        """Silence everything now: the pedal up on every channel, then all sound off and all
        notes off (which the instrument and the keyboard state apply to every channel)."""
        for channel in range(16):
            self.control_change(64, 0, channel)
        self.control_change(120, 0)
        self.control_change(123, 0)

    def _push(self, packed: int) -> None:
        if not self.engine.events.push(packed):
            raise TimbrelError("the MIDI queue is full")

    def audition(self, name: str | None = None) -> Future:
        """Load preset `name` (default: the current one) and play its audition phrase through
        the live engine, from a background thread; returns the Future of the phrase."""
        if name is not None and (self.preset is None or self.library.get(name).name != self.preset.name):
            self.load(name, wait=True)
        f0_stats = self.engine.plugin.instrument.model.info.f0_hz
        return self._loader.submit(play_audition, self._push, f0_stats, polyphonic(self.preset))

    def devices(self) -> dict:
        """Audio devices and MIDI inputs, for a device picker."""
        try:
            midi = list_midi_inputs()
        except TimbrelError:
            midi = []
        return {"audio": [asdict(d) for d in list_audio_devices()], "midi": midi}

    def set_devices(self, output_device=None, input_device=None, latency: str | float = "low",
                    use_input: bool | None = None) -> None:
        """Reopen audio on other devices (a short gap in the sound; MIDI stays open). If the new
        devices fail to open, the old ones are reopened and the fault is raised in one line."""
        old = self.stream
        previous = (old.output_device, old.input_device) if old is not None else (None, None)
        if old is not None:
            old.stop()
            old.close()
        self.stream = None

        def open_stream(output, inp, wanted):
            stream = AudioStream(self.engine.process, self.sample_rate, self.block_size, output_device=output,
                                 input_device=inp or None, use_input=wanted, latency=latency)
            stream.start()
            return stream

        try:
            wanted = use_input if use_input is not None else self.mode == "transfer" or input_device is not None
            self.stream = open_stream(output_device, input_device, wanted)
        except TimbrelError:
            self.stream = open_stream(*previous, previous[1] is not None)
            raise

    def status(self) -> dict:
        """Meters for displays: CPU load, xruns, latency, voices, levels, faults."""
        s = self.engine.status()
        stream = self.stream
        output_latency = 0.0
        if stream is not None:
            output_latency = stream.latency[1] if isinstance(stream.latency, tuple) else stream.latency
        return {
            "preset": self.multi.name if self.multi else self.preset.name if self.preset else None,
            "mode": self.mode, "voices": s.voices,
            "parts": self.ensemble.status() if self.multi is not None and self.ensemble is not None else [],
            "cpu_load": s.cpu_load, "peak_load": s.peak_load, "late_blocks": s.late_blocks,
            "xruns": stream.xruns if stream is not None else 0, "errors": s.errors,
            "latency_ms": 1000 * (output_latency + (self.block_size + s.latency_samples) / self.sample_rate),
            "input_peak": s.input_peak, "output_peak": s.output_peak, "faults": list(s.faults),
            "last_error": self.last_error, "switches": self.switches,
            "audio": None if stream is None else {"output": stream.output_device, "input": stream.input_device,
                                                  "host_api": stream.host_api},
            "midi_port": self.midi.virtual_port if self.midi is not None else None,
            "midi_out_port": self.midi_out.port if self.midi_out is not None else None,
        }

    # I/O ----------------------------------------------------------------------------------

    def start(self, preset: str | None = None, mode: str | None = None, output_device=None, input_device=None,
              midi_ports=None, midi_backend: str = "auto", latency: str | float = "low", use_midi: bool = True,
              settings: Mapping[str, str | float] | None = None, multi: Multi | None = None, gm: bool = False,
              midi_out: bool = False) -> None:
        """Load `preset` (default: the first listed) with `settings` applied (the `--set`
        grammar of `timbrel.presets.settings`), then open audio and MIDI and start playing.

        `midi_out` opens `timbrel-pitch`, the MIDI out of the tracked pitch. Without it no
        transfer instrument writes MIDI, and no sender thread or port costs anything: the
        port is asked for, not opened by default, because most performers never connect it.

        The input device opens when `mode` is "transfer" or an `input_device` is named;
        without it transfer mode has nothing to follow.
        """
        self.policy.enter()
        self.gm = gm
        self._pitch_listened = midi_out and use_midi
        if gm and DRUMS_SKIPPED not in self.notices:
            self.notices.append(DRUMS_SKIPPED)
        if multi is not None:
            self.load_multi(multi, wait=True)
        else:
            first = preset or self.library.list()[0].name
            self.load(first, mode, wait=True, settings=settings)
        use_input = self.mode == "transfer" or input_device is not None
        if use_midi:
            try:
                self.midi = MidiInput(self.engine.events, ports=midi_ports, backend=midi_backend)
            except TimbrelError as err:
                self.last_error = f"playing without MIDI input: {err}"
            if midi_out:
                try:
                    self.midi_out = MidiOutput(self._pitch_outbox, backend=midi_backend)
                except TimbrelError as err:
                    self.last_error = f"playing without MIDI out: {err}"
        self.policy.settle()
        self.stream = AudioStream(self.engine.process, self.sample_rate, self.block_size, output_device=output_device,
                                  input_device=input_device or None, use_input=use_input, latency=latency)
        self.engine.reset_meters()
        self.stream.start()
        self._watcher = ProgramWatcher(self.engine, self._on_program, self.policy)
        self._watcher.start()

    def _pitch_outbox(self) -> MidiOutbox | None:
        """The outbox of the transfer instrument playing now, if one is (the MIDI out sender's source)."""
        plugin = self.engine.plugin
        return getattr(getattr(plugin, "instrument", plugin), "outbox", None)

    def _switch_to_program(self, number: int) -> None:
        """MIDI program `number` selects the library's preset of that index (factory first)."""
        presets = self.library.list()
        if number < len(presets):
            self.load(presets[number].name)

    def stop(self) -> None:
        """Stop audio and MIDI (the engine and the loaded preset stay); leave the runtime policy."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self.stream is not None:
            self.stream.stop()
            self.stream.close()
            self.stream = None
        if self.midi is not None:
            self.midi.stop()
            self.midi = None
        if self.midi_out is not None:
            self.midi_out.stop()
            self.midi_out = None
        self.policy.leave()

    def close(self) -> None:
        self.stop()
        self._loader.shutdown(wait=True)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until a loaded preset has finished crossfading in (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.engine._incoming is None and self.engine._fade_left == 0:
                return True
            time.sleep(0.005)
        return False
