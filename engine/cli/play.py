"""Playing: live, and offline renders through the live path; devices."""

from __future__ import annotations

import argparse
import sys

from engine.cli.options import apply_settings, block_size, resolve_model
from engine.errors import TimbrelError


def _cmd_demo(args: argparse.Namespace) -> int:
    from engine.audiofile import write_audio
    from engine.demo import demo_phrase

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


def _instrument(args: argparse.Namespace):
    from plugin.instrument import MidiInstrument

    return MidiInstrument(resolve_model(args.preset), voices=args.voices)


def _cmd_render(args: argparse.Namespace) -> int:
    import time

    from engine.render import render_midi

    instrument = _instrument(args)
    began = time.perf_counter()
    audio = render_midi(args.song, instrument, args.samplerate, args.blocksize)
    _write_rendered(args.output, audio, args.samplerate, time.perf_counter() - began)
    return 0


def _write_rendered(path: str, audio, sample_rate: int, elapsed_s: float) -> None:
    from engine.audiofile import write_audio

    write_audio(path, audio, sample_rate)
    seconds = audio.shape[0] / sample_rate
    print(f"wrote {path} ({seconds:.1f} s, rendered {seconds / elapsed_s:.0f}x faster than real time)")


def _cmd_transfer(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    import soxr

    from engine.audiofile import read_audio
    from engine.render import render_audio
    from plugin.transfer import TimbreTransfer

    plugin = TimbreTransfer(resolve_model(args.preset))
    apply_settings(plugin, args.set)
    audio, rate = read_audio(args.input)
    mono = audio.mean(axis=1)
    if rate != args.samplerate:
        mono = soxr.resample(mono, rate, args.samplerate, quality="HQ")
    began = time.perf_counter()
    out = render_audio(np.ascontiguousarray(mono, dtype=np.float32), plugin, args.samplerate, args.blocksize)
    _write_rendered(args.output, out, args.samplerate, time.perf_counter() - began)
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    import gc
    import time

    from engine.audio_io import NO_OUTPUT, AudioStream, list_audio_devices
    from engine.engine import Engine
    from engine.midi_io import MidiInput

    if not any(d.outputs for d in list_audio_devices()):
        raise TimbrelError(NO_OUTPUT)
    model = resolve_model(args.preset)
    if args.mic is not None:
        from plugin.transfer import TimbreTransfer

        plugin = TimbreTransfer(model)
    else:
        from plugin.instrument import MidiInstrument

        plugin = MidiInstrument(model, voices=args.voices)
    apply_settings(plugin, args.set)
    engine = Engine(args.samplerate, max(2048, args.blocksize))
    engine.load(plugin)
    midi = None
    if args.mic is None:
        try:
            midi = MidiInput(engine.events, ports=args.midi, backend=args.midi_backend)
        except TimbrelError as err:
            print(f"timbrel: playing without MIDI input: {err}", file=sys.stderr)
    stream = None
    # Everything alive now lives for the session: freezing it keeps the garbage collector's
    # full passes (which run on whichever thread allocates, the audio one included) short.
    gc.collect()
    gc.freeze()
    try:
        stream = AudioStream(engine.process, args.samplerate, args.blocksize, output_device=args.output,
                             input_device=args.mic or None, use_input=args.mic is not None, latency=args.latency)
        engine.reset_meters()
        stream.start()
        if args.mic is not None:
            source = f"input {stream.input_device}"
        else:
            source = f"MIDI port {midi.virtual_port}" if midi else "nowhere (no MIDI)"
        print(f"timbrel: {model.info.name} on {stream.output_device} ({stream.host_api}), "
              f"{int(stream.sample_rate)} Hz, block {stream.block_size}; playing from {source}. Ctrl-C stops.")
        began = time.monotonic()
        while args.seconds is None or time.monotonic() - began < args.seconds:
            time.sleep(0.25)
            print("\r" + _status_line(engine, stream), end="", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if stream is not None:
            stream.stop()
            stream.close()
        if midi is not None:
            midi.stop()
    if stream is not None:
        print("\r" + _status_line(engine, stream))
    return 0


def _status_line(engine, stream) -> str:
    """One line: voices, CPU load, xruns, latency, output level."""
    import math

    status = engine.status()
    output_latency = stream.latency[1] if isinstance(stream.latency, tuple) else stream.latency
    latency_ms = 1000 * (output_latency + (status.block_size + status.latency_samples) / status.sample_rate)
    level = 20 * math.log10(max(status.output_peak, 1e-6))
    return (f"voices {status.voices:2d} | cpu {100 * status.cpu_load:4.1f}% (peak {100 * status.peak_load:4.0f}%) | "
            f"xruns {stream.xruns} | late blocks {status.cpu_overruns}/{status.overruns} | latency {latency_ms:4.1f} ms | "
            f"out {level:5.1f} dB   ")


def _cmd_devices(args: argparse.Namespace) -> int:
    from engine.audio_io import list_audio_devices
    from engine.midi_io import list_midi_inputs

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
    rn.add_argument("-p", "--preset", help="model file (default: the shipped violin)")
    rn.add_argument("-o", "--output", required=True, help="audio file to write (.wav, .flac, .ogg)")
    rn.add_argument("--voices", type=int, default=16, help="polyphony, 1 to 64")
    rn.add_argument("--samplerate", type=int, default=48000, choices=(44100, 48000, 96000), help="Hz")
    rn.add_argument("--blocksize", type=block_size, default=128, help="samples per block, 16 to 2048")
    rn.set_defaults(run=_cmd_render)

    tf = commands.add_parser("transfer", help="play a recording through a model (offline timbre transfer)")
    tf.add_argument("input", help="an audio file of singing or a monophonic instrument")
    tf.add_argument("-p", "--preset", help="model file (default: the shipped violin)")
    tf.add_argument("-o", "--output", required=True, help="audio file to write")
    tf.add_argument("--set", action="append", metavar="PARAM=VALUE", help="e.g. --set pitch_shift_st=12")
    tf.add_argument("--samplerate", type=int, default=48000, choices=(44100, 48000, 96000), help="Hz")
    tf.add_argument("--blocksize", type=block_size, default=128, help="samples per block, 16 to 2048")
    tf.set_defaults(run=_cmd_transfer)

    pl = commands.add_parser("play", help="play live: MIDI in (or a microphone with --mic), audio out")
    pl.add_argument("-p", "--preset", help="model file (default: the shipped violin)")
    pl.add_argument("--midi", nargs="*", metavar="PORT", help="MIDI inputs to open by name (default: all)")
    pl.add_argument("--midi-backend", choices=("auto", "alsa", "jack"), default="auto")
    pl.add_argument("--mic", nargs="?", const="", metavar="DEVICE", help="live timbre transfer from an input device")
    pl.add_argument("--output", metavar="DEVICE", help="output device name or index (default: JACK, else the default)")
    pl.add_argument("--samplerate", type=int, default=48000, choices=(44100, 48000, 96000), help="Hz")
    pl.add_argument("--blocksize", type=block_size, default=128, help="samples per block, 16 to 2048")
    pl.add_argument("--latency", default="low", help="'low', 'high' or seconds of device buffering")
    pl.add_argument("--voices", type=int, default=16, help="polyphony, 1 to 64")
    pl.add_argument("--set", action="append", metavar="PARAM=VALUE", help="set a parameter, e.g. --set release_s=1")
    pl.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    pl.set_defaults(run=_cmd_play)

    dv = commands.add_parser("devices", help="list audio devices and MIDI inputs")
    dv.add_argument("--midi-backend", choices=("auto", "alsa", "jack"), default="auto")
    dv.set_defaults(run=_cmd_devices)
