"""Issue 23: a run's folder, its resume state, its locks and the files later commands trust.

Each test fails on b0fb0e1: names read from resume states left the output
folder (8), `--overwrite` kept the old run's files (5), `evaluate`/`export`
re-derived a run's splits from changed data (6), `evaluate --json` printed a
line before the JSON, a BOM became part of a class name, and the locks,
resume key and folder swaps of item 14.
"""

import fcntl
import json
import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from kerasdistill import cli, config, files, pipeline, runs


def write_images(folder, classes=("cat", "dog"), count=12, start=0):
    rng = np.random.default_rng(start)
    for index, name in enumerate(classes):
        os.makedirs(folder / name, exist_ok=True)
        for i in range(start, start + count):
            pixels = (rng.uniform(0, 80, (8, 8, 3)) + 150 * index).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")


def tiny_config(images, quantizations=("float32", "float16")):
    return {
        "data": {"source": "image_folder", "path": str(images), "validation_size": 4, "test_fraction": 0.25},
        "teacher": {"model": "convnet_student"},
        "student": {"model": "mlp_student"},
        "training": {"epochs": 1, "batch_size": 8},
        "report": {"plots": False},
        "export": {"quantizations": list(quantizations), "targets": ["plain"]},
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished run (float32 and float16 files) on a small image folder."""
    root = tmp_path_factory.mktemp("tiny")
    write_images(root / "images")
    pipeline.run(tiny_config(root / "images"), output=str(root / "out"), name="r", verbose=False)
    return root


def npz_config(tmp_path, rows=40):
    path = tmp_path / "data.npz"
    x = np.zeros((rows, 8, 8, 1), np.float32)
    np.savez(path, x_train=x, y_train=np.arange(rows) % 2, x_test=x[:10], y_test=np.arange(10) % 2)
    return config.validate({"data": {"source": "npz", "path": str(path), "validation_size": 4}})


# 8: names read from resume states obey the rule of --name.


def test_clean_never_removes_a_file_a_resume_state_names_outside_the_output(tmp_path):
    output, victim = tmp_path / "out", tmp_path / "victim" / "x.lock"
    victim.parent.mkdir()
    victim.write_text("precious")
    (output / ".resume" / "k1").mkdir(parents=True)
    (output / ".resume" / "k1" / "run.json").write_text(json.dumps({"name": "../../victim/x"}))
    assert cli.main(["clean", "--output", str(output), "--remove"]) == 0
    assert victim.read_text() == "precious"
    assert not (output / ".resume").exists(), "the state itself (inside the output folder) is removed"


@pytest.mark.parametrize("stored", [True, False], ids=["name-in-resume-state", "name-given"])
def test_run_never_writes_a_lock_a_name_places_outside_the_output(tmp_path, stored):
    output, victim = tmp_path / "out", tmp_path / "victim" / "x.lock"
    victim.parent.mkdir()
    victim.write_text("precious")
    (output / ".resume").mkdir(parents=True)  # another run's state is there
    settings = npz_config(tmp_path)
    if stored:
        state = runs.RunState(settings, str(output), verbose=False).resume
        os.mkdir(state)
        with open(os.path.join(state, "run.json"), "w") as handle:
            json.dump({"name": "../../victim/x"}, handle)
    with pytest.raises(ValueError, match="plain folder name"):
        pipeline.run(settings, output=str(output), name=None if stored else "../../victim/x", verbose=False)
    assert victim.read_text() == "precious"


# 5: --overwrite replaces the run folder's contents as a whole.


def test_overwrite_replaces_the_whole_run_folder(tmp_path):
    settings = npz_config(tmp_path)
    (tmp_path / "out" / "r").mkdir(parents=True)
    (tmp_path / "out" / "r" / "student_float16.tflite").write_bytes(b"an earlier run's file")
    (tmp_path / "out" / "r" / runs.SPLITS_FILE).write_text("{}")  # what marks a run's folder
    with runs.RunState(settings, str(tmp_path / "out"), "r", overwrite=True, verbose=False) as state:
        assert os.listdir(state.folder) == [], "the new run starts in an empty folder"
        files.write_bytes(os.path.join(state.folder, "report.json"), b"{}")
    assert sorted(os.listdir(tmp_path / "out")) == ["r"], "the earlier results are deleted once the run finished"
    assert os.listdir(tmp_path / "out" / "r") == ["report.json"]


def test_a_failed_overwriting_run_puts_the_earlier_results_back(tmp_path):
    settings = npz_config(tmp_path)
    (tmp_path / "out" / "r").mkdir(parents=True)
    (tmp_path / "out" / "r" / "report.json").write_text("earlier")
    (tmp_path / "out" / "r" / runs.SPLITS_FILE).write_text("{}")
    with pytest.raises(RuntimeError, match="data broke"):
        with runs.RunState(settings, str(tmp_path / "out"), "r", overwrite=True, verbose=False) as state:
            files.write_bytes(os.path.join(state.folder, "partial.txt"), b"half")
            raise RuntimeError("data broke")
    assert sorted(os.listdir(tmp_path / "out" / "r")) == ["report.json", runs.SPLITS_FILE]
    assert (tmp_path / "out" / "r" / "report.json").read_text() == "earlier"
    assert sorted(os.listdir(tmp_path / "out")) == ["r"]


def test_without_overwrite_a_folder_holding_results_is_refused_and_left_untouched(tmp_path):
    settings = npz_config(tmp_path)
    (tmp_path / "out" / "r").mkdir(parents=True)
    (tmp_path / "out" / "r" / "report.json").write_text("earlier")
    with pytest.raises(FileExistsError, match="already holds results"):
        with runs.RunState(settings, str(tmp_path / "out"), "r", verbose=False):
            pass
    assert os.listdir(tmp_path / "out" / "r") == ["report.json"]
    assert sorted(os.listdir(tmp_path / "out")) == ["r"]


def test_a_run_that_failed_before_training_leaves_no_folder_behind(tmp_path):
    settings = npz_config(tmp_path)
    for _ in range(2):  # the same command again is not refused for the first attempt's files
        with pytest.raises(RuntimeError, match="late error"):
            with runs.RunState(settings, str(tmp_path / "out"), "r", verbose=False) as state:
                files.write_bytes(os.path.join(state.folder, runs.SPLITS_FILE), b"{}")
                raise RuntimeError("late error")
        assert not os.path.exists(tmp_path / "out" / "r")
    assert os.listdir(tmp_path / "out") == []


# `evaluate --json` prints the JSON alone on stdout.


def test_evaluate_json_on_a_run_file_prints_only_json(tiny_run, capsys):
    assert cli.main(["evaluate", str(tiny_run / "out" / "r" / "student_float32.tflite"), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["accuracy"] >= 0 and "test split of the run's data" in captured.err


def test_an_overwriting_run_leaves_no_file_of_the_earlier_run(tiny_run):
    folder = tiny_run / "out" / "r"
    assert (folder / "student_float16.tflite").exists()
    report = pipeline.run(
        tiny_config(tiny_run / "images", ["float32"]), output=str(tiny_run / "out"), name="r", overwrite=True, verbose=False
    )
    assert not (folder / "student_float16.tflite").exists(), "no file of the old model beside the new ones"
    listed = {os.path.basename(item["path"]) for item in report["export"]["files"]}
    assert listed == {"student_float32.tflite"}
    assert sorted(os.listdir(tiny_run / "out")) == ["r"]


# 6: a run records its splits; later commands refuse when the data changed.


def test_evaluate_and_export_refuse_a_run_whose_data_changed(tiny_run, capsys):
    folder = tiny_run / "out" / "r"
    write_images(tiny_run / "images", count=5, start=100)
    assert cli.main(["evaluate", str(folder / "student_float32.tflite")]) == 2
    error = capsys.readouterr().err
    assert "not the data it ran on" in error and "the test split: " in error
    assert "10 file(s) added to" in error and "cat/100.png" in error
    assert cli.main(["export", str(folder / "student.keras"), "--output", str(tiny_run / "s.tflite")]) == 2
    assert "the train split: " in capsys.readouterr().err
    assert not (tiny_run / "s.tflite").exists()


# A byte-order mark is not part of the first class name.


def test_a_class_names_file_with_a_bom_reads_clean_names(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_bytes("cat\r\ndog\r\n".encode("utf-8-sig"))
    args = cli.build_parser().parse_args(["export", "m.keras", "--target", "classifier", "--class-names", str(labels)])
    assert args.class_names == ["cat", "dog"]


def test_a_class_names_file_with_a_line_character_inside_a_name_is_refused(tmp_path, capsys):
    labels, model = tmp_path / "labels.txt", tmp_path / "m.keras"
    labels.write_text("cat\u2028tabby\ndog\n", encoding="utf-8")
    model.write_bytes(b"not loaded: the names are refused first")
    command = ["export", str(model), "--target", "classifier", "--class-names", str(labels), "--quantization", "float32"]
    assert cli.main(command + ["--output", str(tmp_path / "m.tflite")]) == 2
    assert "--class-names must be non-empty names of one line each" in capsys.readouterr().err


# 14: locks, the resume key, folder swaps.


def test_the_resume_state_is_read_under_its_lock(tmp_path):
    settings = npz_config(tmp_path)
    late = runs.RunState(settings, str(tmp_path / "out"), verbose=False)  # the same command, started earlier
    time.sleep(1.1)  # another second: another default run name
    with runs.RunState(settings, str(tmp_path / "out"), verbose=False) as first:
        with pytest.raises(files.RunInProgressError, match="in use by another kerasdistill process"):
            late.__enter__()
        with open(os.path.join(first.resume, "run.json")) as handle:
            assert json.load(handle)["name"] == first.name


def test_a_lock_file_unlinked_by_its_holder_is_not_locked_twice(tmp_path, monkeypatch):
    path = str(tmp_path / "r.lock")
    holder, newcomer = files.exclusive_lock(path, "A"), files.exclusive_lock(path, "C")
    holder.__enter__()
    real_flock, raced = fcntl.flock, []

    def flock(handle, operation):
        if not raced:
            # Between this process opening the file and locking it, the holder
            # unlinks and releases it, and a third process creates and locks the next one.
            raced.append(True)
            os.remove(path)
            holder.__exit__(None, None, None)
            newcomer.__enter__()
        return real_flock(handle, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    try:
        with pytest.raises(files.RunInProgressError, match=f"pid {os.getpid()}"):
            with files.exclusive_lock(path, "B"):
                pass
    finally:
        newcomer.__exit__(None, None, None)


def test_the_resume_key_changes_with_the_data_and_the_package_version(tmp_path, monkeypatch):
    settings = npz_config(tmp_path)
    key = runs.RunState(settings, str(tmp_path / "out"), verbose=False).resume
    npz_config(tmp_path, rows=60)  # the data file edited in place
    edited = runs.RunState(settings, str(tmp_path / "out"), verbose=False).resume
    assert edited != key
    monkeypatch.setattr("kerasdistill.version.__version__", "99.0")
    assert runs.RunState(settings, str(tmp_path / "out"), verbose=False).resume != edited


KILLED_SWAP = """
import os, sys
from kerasdistill import files

path = os.path.abspath(sys.argv[1])
rename = os.replace


def killed_at_the_last_rename(source, target):
    if os.path.abspath(target) == path:
        os._exit(9)
    rename(source, target)


os.replace = killed_at_the_last_rename
with files.atomic_folder(path, overwrite=True) as temporary:
    with open(os.path.join(temporary, "v"), "w") as handle:
        handle.write("new")
"""


def test_a_folder_swap_killed_between_renames_is_recovered(tmp_path):
    path = tmp_path / "cache"
    path.mkdir()
    (path / "v").write_text("old")
    killed = subprocess.run([sys.executable, "-c", KILLED_SWAP, str(path)], capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr[-2000:]
    with files.atomic_folder(str(path), overwrite=True) as temporary:
        assert (path / "v").read_text() in ("old", "new"), "the old or the new folder is back under its name"
        with open(os.path.join(temporary, "v"), "w") as handle:
            handle.write("newest")
    assert (path / "v").read_text() == "newest"
    assert sorted(os.listdir(tmp_path)) == ["cache"], "no leftovers of the killed writer"


def test_renames_are_followed_by_a_folder_fsync(tmp_path, monkeypatch):
    synced, real_fsync = [], os.fsync

    def fsync(descriptor):
        synced.append(stat.S_ISDIR(os.fstat(descriptor).st_mode))
        return real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    files.write_bytes(tmp_path / "a.json", b"{}")
    assert synced[-1], "the folder is flushed after the file's rename"
    synced.clear()
    with files.atomic_folder(str(tmp_path / "cache")) as temporary:
        with open(os.path.join(temporary, "v"), "w") as handle:
            handle.write("v")
    assert synced and synced[-1]


def test_a_second_run_in_the_same_process_trains_the_same_models(tmp_path):
    # A notebook runs a config twice: the batches' shuffling seeds combine with TensorFlow's global seed, which
    # the first run left set; the second run must shuffle, and so train, exactly as the first did.
    write_images(tmp_path / "images", count=24)
    weights = []
    for name in ("first", "second"):
        settings = tiny_config(tmp_path / "images", quantizations=("float32",))
        pipeline.run({**settings, "training": {"epochs": 2, "batch_size": 8}}, output=str(tmp_path / "out"), name=name, verbose=False)
        weights.append([files.load_model(str(tmp_path / "out" / name / f"{model}.keras")).get_weights() for model in ("teacher", "student_scratch")])
    for first, second in zip(*weights):
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a, b)


def test_a_run_beside_an_unfinished_run_of_other_settings_says_so(tmp_path, capsys):
    # A run killed with other settings (say another teacher_views) keeps its state; a new run starts afresh and
    # names it, with the command that deletes it, instead of leaving gigabytes of state unmentioned.
    write_images(tmp_path / "images")
    (tmp_path / "out" / ".resume" / "0123456789abcdef").mkdir(parents=True)
    (tmp_path / "out" / ".resume" / "0123456789abcdef" / "run.json").write_text(json.dumps({"name": "killed", "replaces": False}))
    pipeline.run(tiny_config(tmp_path / "images", quantizations=("float32",)), output=str(tmp_path / "out"), name="fresh", verbose=True)
    printed = capsys.readouterr().out
    assert "Note: 1 unfinished run(s) of other settings ('killed') keep their state in" in printed
    assert f"kerasdistill clean --output {tmp_path / 'out'} --remove" in printed
    assert (tmp_path / "out" / ".resume" / "0123456789abcdef" / "run.json").exists(), "its state is kept"
