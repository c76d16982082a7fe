"""Playing: live, and offline renders through the live path; devices."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from timbrel.cli.options import assignments, block_size, chain_for, resolve_preset
from timbrel.demo import demo_phrase
from timbrel.engine.atomic import atomic_path, write_text
from timbrel.engine.errors import TimbrelError
from timbrel.engine.io.audio import NO_OUTPUT, list_audio_devices
from timbrel.engine.io.audiofile import read_audio, write_audio
from timbrel.engine.io.midi import list_midi_inputs
from timbrel.engine.realtime.host import Engine
from timbrel.engine.realtime.stages import TIMES, summary
from timbrel.engine.render import TAIL_S, midi_events, render_audio, render_events
from timbrel.plugin.transcribe import FRAMES_PER_SECOND, transcribe
from timbrel.presets.library import Library
from timbrel.presets.multi import Multi, build_ensemble, get_multi
from timbrel.presets.names import slug
from timbrel.presets.settings import apply_settings
from timbrel.presets.song import follow_programs, general_midi_multi, plays_as_ensemble, song_multi
from timbrel.session import Session
from timbrel.ui.server import serve


def _cmd_demo(args: argparse.Namespace) -> int:
    audio = demo_phrase(args.samplerate)
    path = write_audio(args.output, audio, args.samplerate)
    print(f"wrote {path} ({audio.size / args.samplerate:.1f} s at {args.samplerate} Hz)")
    if args.play:
        _play(audio, args.samplerate)
    return 0


def _play(audio, sample_rate: int) -> None:
    try:
        import sounddevice
    except OSError as err:
        raise TimbrelError(f"cannot play: PortAudio is missing ({err}); install libportaudio2") from None
    try:
        sounddevice.play(audio, sample_rate, blocking=True)
    except sounddevice.PortAudioError as err:
        print(f"timbrel: no audio output to play on ({err}); the file was written instead", file=sys.stderr)


def _cmd_render(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    events = midi_events(args.song)
    seconds = events[-1][0] + TAIL_S
    multi = _render_multi(args, events)
    follow = None
    if multi is None:
        if args.stems:
            raise TimbrelError("--stems needs an ensemble: a General MIDI song, or --multi")
        plugin = chain_for(args.preset, "midi", args.voices, args.set)
        after = None
    else:
        plugin = build_ensemble(multi)
        if not args.multi:
            follow = follow_programs(plugin)
        after = None
        if args.stems:
            folder = Path(args.stems)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise TimbrelError(f"--stems {folder}: cannot make the folder ({err.strerror or err})") from None
            stems = np.zeros((len(plugin.parts), int(np.ceil(seconds * args.samplerate)), 2), dtype=np.float32)

            def after(start: int, stop: int) -> None:
                stems[:, start:stop] = plugin.stems[:, :, : stop - start].transpose(0, 2, 1)

    began = time.perf_counter()
    engine = Engine(args.samplerate, args.blocksize)
    audio = render_events(engine, plugin, events, seconds, args.blocksize, after_block=after, on_event=follow)
    _write_rendered(args.output, audio, args.samplerate, time.perf_counter() - began)
    if multi is not None and args.stems:
        for number, (part, stem) in enumerate(zip(plugin.parts, stems), 1):
            path = write_audio(folder / f"{number:02d}-{slug(part.name)}.wav", stem, args.samplerate)
            print(f"wrote {path} (part {number}: {part.name})")
    return 0


def _render_multi(args: argparse.Namespace, events: list[tuple[float, int]]) -> Multi | None:
    """The multi a render plays: `--multi`; else, with no `--preset` or `--set`, the song's
    General MIDI ensemble when the song's `events` want one (`presets.song.plays_as_ensemble`); else None
    (one preset)."""
    if args.multi:
        if args.preset:
            raise TimbrelError("give --preset or --multi, not both")
        return get_multi(Library(), args.multi)
    if args.preset or args.set or not plays_as_ensemble(events):
        return None
    multi, lines = song_multi(args.song, voices=min(args.voices, 16), events=events)
    for line in lines:
        print(f"timbrel: {line}")
    return multi


def _write_rendered(path: str, audio, sample_rate: int, elapsed_s: float) -> None:
    write_audio(path, audio, sample_rate)
    seconds = audio.shape[0] / sample_rate
    print(f"wrote {path} ({seconds:.1f} s, rendered {seconds / elapsed_s:.0f}x faster than real time)")


def _cmd_transfer(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    import soxr

    plugin = chain_for(args.preset, "transfer", texts=args.set)
    audio, rate = read_audio(args.input)
    mono = audio.mean(axis=1)
    if rate != args.samplerate:
        mono = soxr.resample(mono, rate, args.samplerate, quality="HQ")
    began = time.perf_counter()
    out = render_audio(np.ascontiguousarray(mono, dtype=np.float32), plugin, args.samplerate, args.blocksize)
    _write_rendered(args.output, out, args.samplerate, time.perf_counter() - began)
    return 0


def _cmd_transcribe(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import soxr

    output = Path(args.output)
    if output.suffix.lower() not in (".mid", ".midi"):
        raise TimbrelError(f"{output}: a MIDI file must end in .mid or .midi")
    preset = resolve_preset(args.preset)
    if args.set:
        preset = apply_settings(preset, {"mode": "transfer", **assignments(args.set)})
    audio, rate = read_audio(args.input)
    mono = audio.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise TimbrelError(f"{args.input}: the audio holds NaN or infinite samples")
    if rate % FRAMES_PER_SECOND:
        mono = soxr.resample(mono, rate, 48000, quality="HQ")
        rate = 48000
    song = transcribe(mono, rate, preset.values("transfer"))
    with atomic_path(output) as tmp:
        song.save(tmp)
    notes = sum(1 for m in song.tracks[0] if m.type == "note_on" and m.velocity > 0)
    print(f"wrote {output} ({notes} notes from {mono.size / rate:.1f} s of audio)")
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    import time

    if not any(d.outputs for d in list_audio_devices()):
        raise TimbrelError(NO_OUTPUT)
    preset = resolve_preset(args.preset)
    session = Session(sample_rate=args.samplerate, block_size=args.blocksize, voices=args.voices)
    multi = None
    if args.multi and args.gm:
        raise TimbrelError("give --multi or --gm, not both")
    if args.multi:
        multi = get_multi(session.library, args.multi)
    elif args.gm:
        multi = general_midi_multi()
    mode = "transfer" if args.mic is not None else args.mode
    ui = None
    if args.stages:
        profile_stages(args.stages)
    try:
        session.start(str(preset.path) if preset.implicit else preset.name, mode=mode, output_device=args.output,
                      input_device=args.mic or None, midi_ports=args.midi, midi_backend=args.midi_backend,
                      latency=args.latency, settings=assignments(args.set), multi=multi, gm=args.gm,
                      midi_out=args.midi_out)
        if args.ui:
            ui = serve(session, host=args.host, port=args.port)
            print(f"timbrel: control surface at {ui.url}" + (f"  (token {ui.token})" if ui.token else ""))
        stream = session.stream
        source = f"input {stream.input_device}" if session.mode == "transfer" else (
            f"MIDI port {session.midi.virtual_port}" if session.midi else "nowhere (no MIDI)")
        print(f"timbrel: {session.status()['preset']} on {stream.output_device} ({stream.host_api}), "
              f"{int(stream.sample_rate)} Hz, block {stream.block_size}; playing from {source}. "
              "MIDI program changes switch presets; Ctrl-C stops.")
        if session.midi_out is not None:
            print(f"timbrel: MIDI out of the tracked pitch on {session.midi_out.port}")
        if session.last_error:
            print(f"timbrel: {session.last_error}", file=sys.stderr)
        reported = set()
        began = time.monotonic()
        while args.seconds is None or time.monotonic() - began < args.seconds:
            time.sleep(0.25)
            for line in [*session.status()["faults"], session.last_error, *session.notices]:
                if line and line not in reported:
                    reported.add(line)
                    print(f"\rtimbrel: {line}", file=sys.stderr)
            print("\r" + _status_line(session), end="", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if ui is not None:
            ui.close()
        session.close()
    print("\r" + _status_line(session))
    return 0


def profile_stages(path: str) -> None:
    """On SIGUSR1 forget the stage timings so far; on SIGUSR2 write those since to `path` (JSON:
    stage -> median, p99 and max in µs, and the number of blocks), atomically."""
    signal.signal(signal.SIGUSR1, lambda *_: TIMES.clear())

    def write(*_: object) -> None:
        rows = TIMES.snapshot()
        try:
            write_text(path, json.dumps({"blocks": int(rows.shape[0]), "stages": summary(rows)}, indent=2))
        except (OSError, TimbrelError) as err:
            print(f"timbrel: --stages: {err}; playing on", file=sys.stderr)

    signal.signal(signal.SIGUSR2, write)


def _status_line(session) -> str:
    """One line: preset, voices, CPU load, xruns, latency, output level."""
    import math

    s = session.status()
    level = 20 * math.log10(max(s["output_peak"], 1e-6))
    parts = "".join(f" {p['part']}:{20 * math.log10(max(p['peak'], 1e-6)):4.0f}" for p in s["parts"])
    return (f"{s['preset']}{' | parts' + parts if parts else ''} | voices {s['voices']:2d} | "
            f"cpu {100 * s['cpu_load']:4.1f}% (peak {100 * s['peak_load']:4.0f}%) | "
            f"xruns {s['xruns']} | late blocks {s['late_blocks']} | latency {s['latency_ms']:4.1f} ms | "
            f"out {level:5.1f} dB   ")


def _cmd_devices(args: argparse.Namespace) -> int:
    try:
        devices = list_audio_devices()
    except TimbrelError as err:
        print(f"audio: {err}")
        devices = []
    print("audio devices:" if devices else "audio devices: none")
    for d in devices:
        marks = "".join((" [default out]" if d.default_output else "", " [default in]" if d.default_input else ""))
        print(f"  {d.index:3d}  {d.name} ({d.host_api}; {d.inputs} in, {d.outputs} out, "
              f"{int(d.default_sample_rate)} Hz){marks}")
    try:
        ports = list_midi_inputs(args.midi_backend)
        print("MIDI inputs:" if ports else "MIDI inputs: none (timbrel's own virtual port appears while it plays)")
        for name in ports:
            print(f"  {name}")
    except TimbrelError as err:
        print(f"MIDI: {err}")
    return 0


def add_commands(commands) -> None:
    """Register this module's sub-commands."""
    demo = commands.add_parser("demo", help="render (and play) a phrase through the synthesis kernels")
    demo.add_argument("-o", "--output", default="timbrel-demo.wav", help="where to write it (default: %(default)s)")
    demo.add_argument("--samplerate", type=int, default=48000, choices=(44100, 48000, 96000), help="Hz")
    demo.add_argument("--no-play", dest="play", action="store_false", help="only write the file")
    demo.set_defaults(run=_cmd_demo)

    rn = commands.add_parser("render", help="render a MIDI file through the live engine path")
    rn.add_argument("song", help="a standard MIDI file")
    rn.add_argument("-p", "--preset", help="preset name, .toml preset or .onnx model (default: a song on several "
                    "channels or with program changes plays its General MIDI instruments, else Violin)")
    rn.add_argument("--multi", metavar="MULTI", help="play an ensemble: a multi name or .toml file (timbrel multis); "
                    "the song's program changes are then ignored")
    rn.add_argument("--stems", metavar="DIR", help="also write each part of an ensemble to DIR, one file per part")
    rn.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. --set release_s=1, voice_mode=legato or delay.mix=0.2")
    rn.add_argument("-o", "--output", required=True, help="audio file to write (.wav, .flac, .ogg)")
    rn.add_argument("--voices", type=int, default=16, help="polyphony, 1 to 64 (an ensemble's parts: at most 16 each)")
    rn.add_argument("--samplerate", type=int, default=48000, choices=(44100, 48000, 96000), help="Hz")
    rn.add_argument("--blocksize", type=block_size, default=128, help="samples per block, 16 to 2048")
    rn.set_defaults(run=_cmd_render)

    tf = commands.add_parser("transfer", help="play a recording through a model (offline timbre transfer)")
    tf.add_argument("input", help="an audio file of singing or a monophonic instrument")
    tf.add_argument("-p", "--preset", help="preset name, .toml preset or .onnx model (default: Violin)")
    tf.add_argument("-o", "--output", required=True, help="audio file to write")
    tf.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. --set pitch_shift_st=12")
    tf.add_argument("--samplerate", type=int, default=48000, choices=(44100, 48000, 96000), help="Hz")
    tf.add_argument("--blocksize", type=block_size, default=128, help="samples per block, 16 to 2048")
    tf.set_defaults(run=_cmd_transfer)

    tc = commands.add_parser("transcribe", help="write the MIDI that live transfer's MIDI out sends for a recording")
    tc.add_argument("input", help="an audio file of singing or a monophonic instrument")
    tc.add_argument("-o", "--output", required=True, help="MIDI file to write (.mid)")
    tc.add_argument("-p", "--preset", help="take pitch_floor_hz, gate_db, bend_range_st, mpe, ... from this preset "
                    "(default: Violin)")
    tc.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="e.g. --set pitch_floor_hz=200, --set bend_range_st=48 or --set mpe=on")
    tc.set_defaults(run=_cmd_transcribe)

    pl = commands.add_parser("play", help="play live: MIDI in (or a microphone with --mic), audio out")
    pl.add_argument("-p", "--preset", help="preset name, .toml preset or .onnx model (default: Violin)")
    pl.add_argument("--mode", choices=("midi", "transfer"), help="play from MIDI or a microphone (default: the preset's)")
    pl.add_argument("--multi", metavar="MULTI", help="play an ensemble: a multi name or .toml file (timbrel multis)")
    pl.add_argument("--gm", action="store_true", help="play General MIDI: a part of 4 voices per channel, program "
                    "changes choose each part's instrument by the GM map (docs/GM.md); channel 10 (drums) is skipped")
    pl.add_argument("--midi", nargs="*", metavar="PORT", help="MIDI inputs to open by name (default: all)")
    pl.add_argument("--midi-backend", choices=("auto", "alsa", "jack"), default="auto")
    pl.add_argument("--mic", nargs="?", const="", metavar="DEVICE", help="live timbre transfer from an input device")
    pl.add_argument("--midi-out", action="store_true",
                    help="in transfer mode, send the tracked pitch as MIDI on the port timbrel-pitch")
    pl.add_argument("--output", metavar="DEVICE", help="output device name or index (default: JACK, else the default)")
    pl.add_argument("--samplerate", type=int, default=48000, choices=(44100, 48000, 96000), help="Hz")
    pl.add_argument("--blocksize", type=block_size, default=128, help="samples per block, 16 to 2048")
    pl.add_argument("--latency", default="low", help="'low', 'high' or seconds of device buffering")
    pl.add_argument("--voices", type=int, default=16, help="polyphony, 1 to 64")
    pl.add_argument("--set", action="append", metavar="KEY=VALUE", help="set a parameter, e.g. --set release_s=1 or reverb.mix=0.5")
    pl.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    pl.add_argument("--no-ui", dest="ui", action="store_false", help="do not start the browser control surface")
    pl.add_argument("--stages", metavar="FILE", help="profile: SIGUSR1 starts a window of per-stage block timings, "
                    "SIGUSR2 writes its median, p99 and max per stage to FILE as JSON (bench.bench_process)")
    pl.add_argument("--host", default="127.0.0.1", help="address the control surface binds to (LAN needs its token)")
    pl.add_argument("--port", type=int, default=8750, help="control surface port (0: any free port)")
    pl.set_defaults(run=_cmd_play)

    dv = commands.add_parser("devices", help="list audio devices and MIDI inputs")
    dv.add_argument("--midi-backend", choices=("auto", "alsa", "jack"), default="auto")
    dv.set_defaults(run=_cmd_devices)
