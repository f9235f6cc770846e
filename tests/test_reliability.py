"""Faults: kills mid-run and mid-write, NaN losses, full disks, unsafe model files."""

import errno
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import kerasdistill as kd
from kerasdistill import files, models
from kerasdistill.backend import keras
from kerasdistill.callbacks import BackupAndRestore, NonFiniteLossError, StopOnNonFinite

RUN = [sys.executable, "-m", "kerasdistill_cli", "run", "--epochs", "3"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def distilled_accuracy(folder):
    with open(os.path.join(folder, "report.json")) as handle:
        report = json.load(handle)
    return {row["model"]: row["test_accuracy"] for row in report["models"]}


@pytest.mark.slow
def test_a_killed_run_resumes_with_the_same_command_and_reaches_the_same_result(tmp_path):
    command = RUN + ["--output", str(tmp_path / "out"), "--name", "r"]
    log = open(tmp_path / "first.log", "w")
    process = subprocess.Popen(command, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        # Kill in the middle of distillation: after its first finished epoch.
        pattern = str(tmp_path / "out" / ".resume" / "*" / "student-backup" / "training_state.json")
        while not glob.glob(pattern):
            assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "distillation did not start in time"
            time.sleep(0.05)
        time.sleep(0.3)  # into the next epoch
        # A second run of the same name while the first lives is refused, naming it.
        from kerasdistill import pipeline

        with pytest.raises(files.RunInProgressError, match=f"in use by another kerasdistill process \\(pid {process.pid}"):
            pipeline.run({"training": {"epochs": 3}}, output=str(tmp_path / "out"), name="r", verbose=False)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert not os.path.exists(tmp_path / "out" / "r" / "report.json")
    # What a writer killed mid-write leaves behind (its process is gone).
    stale = tmp_path / "out" / "r" / ".tmp-999999999-0badf00d-student.keras"
    stale.write_bytes(b"partial")

    again = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)  # the same command
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming the unfinished run 'r'" in again.stdout
    assert "[1/3] Teacher: finished before the interruption" in again.stdout
    assert "resumed at epoch" in again.stdout
    assert not os.path.exists(tmp_path / "out" / ".resume"), "the resume state is removed after success"
    assert not stale.exists(), "the killed writer's partial file is cleaned up"
    with open(tmp_path / "out" / "r" / "report.json") as handle:
        report = json.load(handle)
    # The epochs before the kill are in the report, and their time is counted.
    assert len(report["histories"]["distilled"]["loss"]) == 3
    distilled = next(row for row in report["models"] if row["model"] == "student (distilled)")
    assert distilled["train_seconds"] > 0

    clean = subprocess.run(
        RUN + ["--output", str(tmp_path / "clean"), "--name", "r", "--quiet"], env=ENV, capture_output=True, timeout=600
    )
    assert clean.returncode == 0, clean.stderr[-3000:]
    resumed, uninterrupted = distilled_accuracy(tmp_path / "out" / "r"), distilled_accuracy(tmp_path / "clean" / "r")
    assert resumed["teacher"] == uninterrupted["teacher"]
    assert abs(resumed["student (distilled)"] - uninterrupted["student (distilled)"]) < 0.02, (resumed, uninterrupted)


WRITER = """
import sys
from kerasdistill import files, models
model = models.build("convnet_teacher", (28, 28, 1), 10)
print("ready", flush=True)
while True:
    files.save_model(model, sys.argv[1])
    print("saved", flush=True)
"""


# Four writer processes killed mid-write (about 17 s): the slow layer; the default layer checks a failed write in-process.
@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_the_old_complete_file_or_none(tmp_path):
    path = tmp_path / "model.keras"
    for attempt, delay in enumerate((0.0, 0.0, 0.15, 0.4)):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=ENV, stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        if attempt > 0:
            # One save has completed: from here on a complete file must always be
            # there, whenever the kill lands (however fast this machine is).
            assert writer.stdout.readline().strip() == "saved"
        time.sleep(delay)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        if path.exists():
            assert files.load_model(path).count_params() == 421_930
        elif attempt > 0:
            pytest.fail("a complete file from an earlier save disappeared")
        assert not [name for name in os.listdir(tmp_path) if name != "model.keras" and not name.startswith(".tmp-")]
    assert path.exists()


def test_a_full_disk_gives_a_clear_error_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    files.write_json(path, {"version": 1})

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="The disk is full.*previous file is intact.*Free some space"):
        files.write_json(path, {"version": 2})
    assert json.loads(path.read_text()) == {"version": 1}
    assert os.listdir(tmp_path) == ["report.json"]


def test_a_nan_loss_stops_training_naming_the_term_and_keeps_the_last_backup(digits, trained_teacher, tmp_path):
    keras.utils.set_random_seed(1)
    student = models.build("convnet_student", (28, 28, 1), 10)
    distiller = kd.Distiller(trained_teacher, student)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        distillation_loss_fn=["soft_target_kl", kd.losses.Hint(pairs=[("relu2", "relu2")])],
    )
    x = digits.train.x[:512].copy()
    x[300] = np.inf  # batch 5 of epoch 2 (batches of 64, no shuffling) holds it
    backup = tmp_path / "backup"
    clean = digits.train.x[:256]
    distiller.fit(clean, digits.train.y[:256], epochs=1, batch_size=64, verbose=0, callbacks=[BackupAndRestore(backup, delete_on_success=False)])
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 5: non-finite .*hint=nan.*lower learning rate"):
        distiller.fit(x, digits.train.y[:512], initial_epoch=1, epochs=2, batch_size=64, shuffle=False, verbose=0, callbacks=[BackupAndRestore(backup)])
    state = json.loads((backup / "training_state.json").read_text())
    assert state["epoch"] == 1, "the backup of the last good epoch is kept"


def test_a_keras_file_carrying_a_lambda_is_refused_unless_the_user_opts_in(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ValueError, match="runs arbitrary Python code.*safe_mode=False"):
        files.load_model(path)
    model = files.load_model(path, safe_mode=False)
    np.testing.assert_allclose(np.asarray(model(np.ones((1, 4), np.float32))), 2.0)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a .keras model file.*corrupt, truncated"):
        files.load_model(corrupt)


def test_the_nan_guard_names_the_first_failing_step_when_its_hooks_finish_out_of_order():
    # Keras runs the guard's batch hooks on worker threads: the hook of step 4 may finish before step 3's.
    import concurrent.futures

    guard = StopOnNonFinite()
    guard.on_epoch_begin(1)
    for step in range(5):
        guard.on_train_batch_begin(step)
    losses = [0.5, 0.4, float("nan"), float("nan"), float("nan")]
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(guard.on_train_batch_end, step, {"loss": losses[step]}) for step in (4, 3, 1, 0, 2)]
        errors = [str(future.exception(timeout=30)) for future in futures if future.exception(timeout=30)]
    assert len(errors) == 3 and all("epoch 2, step 3: non-finite loss=nan" in error for error in errors), errors
