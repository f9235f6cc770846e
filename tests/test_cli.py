"""`kerasdistill run` end to end, as a user runs it."""

import json
import os
import subprocess
import sys

import pytest

from kerasdistill.logs import NATIVE_LOG_LINE
from kerasdistill.version import __version__

from conftest import cli_in_process

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def kerasdistill(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "kerasdistill_cli", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600
    )


def report_verdict(folder):
    return json.loads((folder / "report.json").read_text())["verdict"]


def test_run_trains_three_models_prints_the_table_and_saves_the_student(tmp_path, capsys):
    result = kerasdistill("run", "--epochs", "2", "--output", str(tmp_path), "--name", "first")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for text in ("[1/3] Teacher", "[2/3] Same student from scratch", "[3/3] Distilled student", "test accuracy"):
        assert text in out
    # The embedded default: 500 labeled digits, the other 3,000 the transfer set.
    assert "500 labeled + 3000 unlabeled train" in out
    assert report_verdict(tmp_path / "first") in out
    folder = tmp_path / "first"
    report = json.loads((folder / "report.json").read_text())
    rows = {row["model"]: row for row in report["models"]}
    teacher, distilled, scratch = rows["teacher"], rows["student (distilled)"], rows["student (scratch)"]
    assert teacher["params"] > 10 * distilled["params"]
    assert distilled["params"] == scratch["params"]
    assert teacher["test_accuracy"] > 0.9
    assert distilled["test_accuracy"] > 0.8
    assert distilled["size_kib"] < teacher["size_kib"] / 5
    for name in ("student.keras", "teacher.keras", "student_scratch.keras"):
        assert (folder / name).stat().st_size > 1000
    assert not [p for p in os.listdir(folder) if ".tmp" in p], "no temporary files are left behind"
    assert report["table"] in out
    # TensorFlow's and LiteRT's native log lines are hidden; report.json says what produced it.
    assert not NATIVE_LOG_LINE.search(result.stderr.encode()), result.stderr[-2000:]
    assert "cuda" not in result.stderr.lower() and "XNNPACK" not in result.stderr
    assert {"kerasdistill", "keras", "tensorflow", "numpy", "python"} <= set(report["versions"]) and report["created"]
    assert rows["student (distilled)"]["path"] == "student.keras", "paths are relative to the run folder"
    # The student exported is the one shipped: the better of the two on validation (at 2 epochs either may be).
    shipped = report["shipped"]
    assert report["export"]["models"][0]["model"] == shipped["label"]
    assert shipped["validation"][shipped["label"]] == max(shipped["validation"].values())
    assert "keras, " in report["export"]["table"] and "litert, 1 thread" in report["export"]["table"]
    assert report["config"]["teacher"]["weights"] is None, "a built-in teacher has no ImageNet weights"

    # The commands below run in-process: what they print is asserted, not their process.
    # A model of a run exports to int8 with no more arguments: the run's own images calibrate it.
    status, out, err = cli_in_process(capsys, "export", folder / "student.keras", "--output", tmp_path / "student.tflite")
    assert status == 0, err[-2000:]
    assert "Calibrating on 200 training images of the run's data" in out and "int8" in out
    # A file of a run is evaluated on that run's own test split.
    status, out, err = cli_in_process(capsys, "evaluate", folder / "student_int8.tflite")
    assert status == 0, err[-2000:]
    assert "test split of the run's data" in out and "on 1000 samples" in out

    status, _, err = cli_in_process(capsys, "run", "--epochs", "1", "--output", tmp_path, "--name", "first")
    assert status == 2
    assert "already holds results" in err and "--overwrite" in err
    assert json.loads((folder / "report.json").read_text()) == report, "the earlier run is untouched"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "must be a whole number >= 1"),
        (["--alpha", "1.5"], r"must be in [0, 1]"),
        (["--temperature", "0"], "must be > 0"),
        (["--bogus"], "unrecognized arguments"),
        (["--labeled-size", "many"], "must be a count, a fraction below 1 or 'all'"),
        (["--augmentation", "flip,blur"], "Unknown augmentation(s) 'blur'"),
        (["--augmentation", "mixup", "--alpha", "0.1"], "mixes images (mixup) but distillation.alpha is 0.1"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(args, message, tmp_path, capsys):
    status, _, err = cli_in_process(capsys, "run", "--output", tmp_path, *args)
    assert status == 2
    assert message in err
    assert not list(tmp_path.iterdir())


def test_unwritable_output_is_refused_with_the_fix(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    status, _, err = cli_in_process(capsys, "run", "--output", blocker / "sub")
    assert status == 2
    assert "Cannot create the output folder" in err and "--output" in err


def test_help_describes_the_main_job():
    result = kerasdistill("run", "--help")
    assert result.returncode == 0
    assert "embedded default data" in result.stdout and "--epochs" in result.stdout


def test_help_and_bad_arguments_answer_without_loading_tensorflow():
    # What the `kerasdistill` command runs (setup.py's entry point).
    script = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "import kerasdistill_cli\n"
        "for argv in (['--help'], ['--version'], ['run', '--help'], ['run', '--alpha', '2'], ['export', 'gone.keras'],\n"
        "             ['evaluate', 'gone.tflite'], ['run', '--config', 'gone.yaml']):\n"
        "    try:\n"
        "        kerasdistill_cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'jax', 'torch'))\n"
        "print('SECONDS', time.perf_counter() - start, 'HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=60)
    seconds, heavy = result.stdout.split("SECONDS")[1].split("HEAVY")
    assert heavy.strip() == "[]", heavy
    assert float(seconds) < 2.0
    assert "--alpha: must be in [0, 1], got 2" in result.stderr
    # The files a command reads are checked before Keras loads.
    assert "export: error: No file at gone.keras (model)" in result.stderr
    assert "evaluate: error: No file at gone.tflite (tflite)" in result.stderr
    assert "run: error: No config file at gone.yaml" in result.stderr
    assert f"kerasdistill {__version__}" in result.stdout
    # The flags' help comes from the config schema (argparse wraps it).
    assert (
        "softening temperature in (0, 100]; auto: chosen on the validation split among 4, 2 (default: auto; config "
        "key distillation.temperature)"
    ) in " ".join(result.stdout.split())


def test_flags_fill_empty_config_sections_and_a_config_that_is_no_mapping_is_refused(tmp_path, capsys):
    from kerasdistill import cli, config

    path = tmp_path / "run.yaml"
    path.write_text("training:\ntune:\n")
    args = cli.build_parser().parse_args(["run", "--config", str(path), "--epochs", "3", "--tune"])
    resolved = config.validate(cli._run_config(args))
    assert resolved["training"]["epochs"] == 3 and resolved["tune"]["enabled"] is True
    for text in ("0\n", "[]\n", "false\n"):
        path.write_text(text)
        status, _, err = cli_in_process(capsys, "run", "--config", path, "--epochs", "1", "--output", tmp_path / "out")
        assert status == 2 and "A config is a mapping of sections" in err, err
