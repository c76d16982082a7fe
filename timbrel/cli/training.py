"""Training: render data, train a model, export a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from timbrel.engine.errors import TimbrelError
from timbrel.export.dataset import prepare_dataset
from timbrel.export.fluidsynth import generate_dataset
from timbrel.export.style import describe_style, style_of_folder, write_style
from timbrel.presets.folders import factory_models_dir


def _require_training():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise TimbrelError("training needs torch: pip install 'timbrel[train]'") from None


def _cmd_train(args: argparse.Namespace) -> int:
    _require_training()
    import os

    from platformdirs import user_cache_dir

    from timbrel.export.model import ModelConfig
    from timbrel.export.onnx_import import network_from_model
    from timbrel.export.release import release
    from timbrel.export.train import TrainConfig, load_checkpoint, train

    model_config = ModelConfig(sample_rate=args.sample_rate, frame_rate=args.frame_rate, harmonics=args.harmonics,
                               noise_bands=args.noise_bands, units=args.units, hidden=args.hidden, layers=args.layers)
    workdir = Path(args.workdir or f"{args.name}.train")
    minutes = args.max_minutes
    if args.resume and minutes is not None:  # a budget given to a resumed run is more time, on top of what it had
        minutes += load_checkpoint(workdir / "last.pt")["history"]["seconds"] / 60
    steps = args.steps if args.steps is not None else (1_000_000_000 if minutes is not None else 3000)
    config = TrainConfig(steps=steps, batch=args.batch, clip_seconds=args.clip_seconds,
                         learning_rate=args.learning_rate, seed=args.seed, max_minutes=minutes)
    output = Path(args.output or f"{args.name}.onnx")
    cache = Path(user_cache_dir("timbrel")) / "features"
    dataset = prepare_dataset(args.folder, model_config.sample_rate, model_config.hop, cache_dir=cache, seed=args.seed)
    print(f"{len(dataset.files)} file(s), {dataset.seconds / 60:.1f} min of audio; "
          f"{len(dataset.train)} training and {len(dataset.validation)} validation segments")
    start_from, start_name = None, ""
    if args.start_from and not args.resume:
        source = _starting_model(args.start_from, dataset)
        start_from, start_name = network_from_model(source), source.stem
        why = " (the factory model nearest these recordings' pitch and loudness)" if args.start_from == "auto" else ""
        print(f"fine-tuning from {source}{why}")
    best = train(args.folder, workdir, name=args.name, model_config=model_config, config=config, resume=args.resume,
                 progress=not args.quiet, dataset=dataset, start_from=start_from, start_name=start_name)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    figures = release(best, output, dataset, name=args.name)
    line = figures.pop("verdict", None)
    usable = figures.pop("usable", None)
    _print_figures(figures)
    print(f"loss curve: {workdir / 'loss.png'}")
    if line:
        advice = "" if usable else (f"; continue with `timbrel train {args.folder} --name {args.name} --workdir {workdir} "
                                    f"--resume --max-minutes 10` (the model was written all the same)")
        print(f"{output}: {line}{advice}")
    return 0


def _starting_model(choice: str, dataset):
    """The model file `--from` names: a path, a factory instrument ("cello"), or "auto" (the
    factory model whose training pitch and loudness were nearest to these recordings')."""
    from timbrel.export.onnx_import import nearest_model

    factory = sorted(factory_models_dir().glob("*.onnx"))
    if choice == "auto":
        f0_stats, loudness_stats = dataset.statistics()
        return nearest_model(factory, f0_stats, loudness_stats)
    path = Path(choice)
    if path.is_file():
        return path
    named = factory_models_dir() / f"{choice}.onnx"
    if named.is_file():
        return named
    raise TimbrelError(f"--from {choice}: no such model file or factory instrument "
                       f"(factory: {', '.join(p.stem for p in factory)}, or auto)")


def _cmd_export(args: argparse.Namespace) -> int:
    _require_training()
    from pathlib import Path

    from timbrel.export.release import release
    from timbrel.export.train import load_checkpoint

    checkpoint = load_checkpoint(args.checkpoint)
    output = Path(args.output or f"{checkpoint.get('name') or Path(args.checkpoint).stem}.onnx")
    _print_figures(release(checkpoint, output, None, name=args.name))
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    paths = generate_dataset(args.instrument, args.minutes * 60, args.seed, args.output, vibrato=args.vibrato)
    print(f"wrote {len(paths)} phrase(s) of {args.instrument} to {args.output}")
    return 0


def _cmd_style(args: argparse.Namespace) -> int:
    style = style_of_folder(args.model, args.folder)
    write_style(args.model, style, args.output)
    print(f"wrote the style of {args.folder} into {args.output or args.model}")
    for line in describe_style(style):
        print(line)
    return 0


def _print_figures(figures: dict) -> None:
    for key, value in figures.items():
        print(f"  {key:24s} {value:.4g}" if isinstance(value, float) else f"  {key:24s} {value}")


def add_commands(commands) -> None:
    """Register this module's sub-commands."""
    tr = commands.add_parser("train", help="train a model on a folder of recordings of one instrument")
    tr.add_argument("folder", help="folder of WAV, FLAC, OGG or MP3 files (any rate, any channels)")
    tr.add_argument("--name", required=True, help="the model's name")
    tr.add_argument("-o", "--output", help="model file to write (default: NAME.onnx)")
    tr.add_argument("--workdir", help="checkpoints, history and loss curve (default: NAME.train)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --workdir")
    tr.add_argument("--steps", type=int, help="stop at this step (default: 3000, or no limit with --max-minutes)")
    tr.add_argument("--max-minutes", type=float,
                    help="stop after this much training time, keeping the best model; with --resume, this much more")
    tr.add_argument("--batch", type=int, default=8)
    tr.add_argument("--clip-seconds", type=float, default=1.0)
    tr.add_argument("--learning-rate", type=float, default=1e-3)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--sample-rate", type=int, default=48000, help="model rate, Hz")
    tr.add_argument("--frame-rate", type=int, default=300, help="control frames per second")
    tr.add_argument("--harmonics", type=int, default=64)
    tr.add_argument("--noise-bands", type=int, default=65)
    tr.add_argument("--units", type=int, default=128, help="width of the dense stacks")
    tr.add_argument("--hidden", type=int, default=128, help="GRU size")
    tr.add_argument("--layers", type=int, default=2, help="layers per dense stack")
    tr.add_argument("--from", dest="start_from", metavar="MODEL",
                    help="fine-tune another instrument's model (a .onnx file, a factory instrument such as cello, "
                         "or auto: the nearest factory model) instead of starting from scratch")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(run=_cmd_train)

    ex = commands.add_parser("export", help="export a training checkpoint to a .onnx model, and check it")
    ex.add_argument("checkpoint", help="a best.pt or last.pt from a training run")
    ex.add_argument("-o", "--output", help="model file to write (default: NAME.onnx)")
    ex.add_argument("--name", help="rename the model")
    ex.set_defaults(run=_cmd_export)

    st = commands.add_parser("style", help="learn a playing style (vibrato, scoops, swells) from recordings into a model")
    st.add_argument("model", help="the .onnx model to give the style to")
    st.add_argument("folder", help="recordings of the player whose style it is (often the model's training folder)")
    st.add_argument("-o", "--output", help="write a styled copy here instead of changing MODEL")
    st.set_defaults(run=_cmd_style)

    da = commands.add_parser("data", help="render expressive training phrases of a General MIDI instrument")
    da.add_argument("instrument", help="e.g. violin, cello, flute, trumpet, alto_sax")
    da.add_argument("-o", "--output", required=True, help="folder to write WAV files (and JSON sidecars) into")
    da.add_argument("--minutes", type=float, default=5.0)
    da.add_argument("--seed", type=int, default=0)
    da.add_argument("--vibrato", type=float, nargs=2, metavar=("HZ", "CENTS"),
                    help="play every long note with this vibrato instead of the instrument's usual one")
    da.set_defaults(run=_cmd_data)
