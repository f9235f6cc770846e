"""MultiWorkerMirroredStrategy: two real worker processes on 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "multi_worker.py")
TIMEOUT = 300


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(folder, *args):
    ports = free_ports(2)
    workers = []
    for index in range(2):
        config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL="2")
        log = open(folder / f"worker-{index}.log", "a")
        workers.append(
            subprocess.Popen([sys.executable, EXAMPLE, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        )
    return workers


def stop(workers):
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=30)


def wait(workers, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    try:
        for worker in workers:
            worker.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        stop(workers)
    return [w.returncode for w in workers]


def events(folder, index):
    lines = (folder / f"worker-{index}.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture(scope="module")
def teacher_file(trained_teacher, tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    trained_teacher.save(path)
    return str(path)


def arguments(folder, teacher_file, epochs):
    return [
        "--teacher", teacher_file, "--epochs", str(epochs), "--backup-dir", str(folder / "backup"),
        "--output", str(folder / "student.keras"), "--dump-weights", str(folder / "weights"),
    ]  # fmt: skip


def assert_identical_students(folder):
    first, second = (np.load(folder / "weights" / f"worker-{i}.npz") for i in range(2))
    assert len(first.files) == len(second.files) > 0
    for name in first.files:
        if name.startswith("trainable"):
            np.testing.assert_array_equal(first[name], second[name])
        else:  # BatchNorm moving statistics: each worker averages its own shard
            np.testing.assert_allclose(first[name], second[name], rtol=0.05, atol=0.05)


@pytest.mark.slow
def test_two_workers_distill_the_same_student(tmp_path, teacher_file):
    workers = start_workers(tmp_path, *arguments(tmp_path, teacher_file, epochs=2))
    assert wait(workers) == [0, 0], (tmp_path / "worker-0.log").read_text()[-3000:]
    for index in range(2):
        log = events(tmp_path, index)
        assert log[0] == {"worker": index, "replicas": 2}
        losses = [e["loss"] for e in log if "epoch" in e]
        assert len(losses) == 2 and losses[1] < losses[0]
    assert_identical_students(tmp_path)
    saved = [e for e in events(tmp_path, 0) if "saved" in e]
    assert saved and saved[0]["test_accuracy"] > 0.85
    assert os.path.exists(tmp_path / "student.keras")
    assert not os.path.exists(tmp_path / "backup"), "the backup is removed after a complete run"


@pytest.mark.slow
def test_two_workers_split_the_scoring_and_distill_on_a_streamed_folder(tmp_path, teacher_file, digits):
    import tensorflow as tf

    from kerasdistill import models
    from kerasdistill.backend import keras
    from conftest import accuracy

    folder = tmp_path / "unlabeled"
    folder.mkdir()
    for index, image in enumerate(digits.train.x[-1200:]):
        keras.utils.save_img(folder / f"{index:04d}.png", image, scale=False)
    args = [*arguments(tmp_path, teacher_file, epochs=2), "--unlabeled", str(folder), "--shards", str(tmp_path / "shards"), "--labels", "200"]
    workers = start_workers(tmp_path, *args)
    assert wait(workers) == [0, 0], (tmp_path / "worker-0.log").read_text()[-3000:]
    # 1,200 images in 5 shards of 256: worker 0 scores shards 1, 3, 5 and worker 1 shards 2, 4, into one folder.
    for index, own in ((0, ["1/5", "3/5", "5/5"]), (1, ["2/5", "4/5"])):
        text = (tmp_path / f"worker-{index}.log").read_text()
        assert [line.split("shard ")[1].split(" ")[0] for line in text.splitlines() if "teacher outputs: shard" in line] == own
    assert sorted(name for name in os.listdir(tmp_path / "shards") if name.startswith("shard-")) == [f"shard-{i:05d}.logits" for i in range(5)]
    for index in range(2):
        losses = [e["loss"] for e in events(tmp_path, index) if "epoch" in e]
        assert len(losses) == 2 and losses[1] < losses[0]
    assert_identical_students(tmp_path)
    # The same student on the 200 labels alone, for as many steps (25 an epoch) of as many labeled images (16 a batch).
    keras.utils.set_random_seed(0)
    alone = models.build("convnet_student", (28, 28, 1), 10)
    alone.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    labeled = tf.data.Dataset.from_tensor_slices(tuple(a[:200] for a in digits.train)).shuffle(200, seed=0).repeat().batch(16)
    alone.fit(labeled, epochs=2, steps_per_epoch=25, verbose=0)
    scratch = accuracy(alone, *digits.test)
    distilled = [e for e in events(tmp_path, 0) if "saved" in e][0]["test_accuracy"]
    assert distilled > scratch + 0.03, (distilled, scratch)


@pytest.mark.slow
def test_killed_worker_resumes_from_the_last_finished_epoch(tmp_path, teacher_file):
    args = arguments(tmp_path, teacher_file, epochs=4)
    state = tmp_path / "backup" / "training_state.json"
    workers = start_workers(tmp_path, *args)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not state.exists():
            assert time.monotonic() < deadline, "no epoch finished in time"
            assert all(w.poll() is None for w in workers), (tmp_path / "worker-0.log").read_text()[-3000:]
            time.sleep(0.1)
        os.kill(workers[1].pid, signal.SIGKILL)
        workers[1].wait(timeout=30)
    finally:
        stop(workers)
    finished = json.loads(state.read_text())["epoch"]
    assert 1 <= finished < 4

    workers = start_workers(tmp_path, *args)  # the same command again
    assert wait(workers) == [0, 0], (tmp_path / "worker-0.log").read_text()[-3000:]
    for index in range(2):
        log = events(tmp_path, index)
        resumed = [e["resumed_from_epoch"] for e in log if "resumed_from_epoch" in e]
        assert resumed == [finished], log
        second_run = log[[i for i, e in enumerate(log) if "replicas" in e][1] :]
        assert [e["epoch"] for e in second_run if "epoch" in e] == list(range(finished + 1, 5))
    assert_identical_students(tmp_path)


@pytest.mark.slow
def test_kerasdistill_run_on_two_workers_writes_one_run_folder(tmp_path):
    command = ["-m", "kerasdistill_cli", "run", "--strategy", "multi_worker", "--epochs", "1", "--name", "mw",
               "--output", str(tmp_path / "out"), "--quiet"]  # fmt: skip
    ports = free_ports(2)
    workers = []
    for index in range(2):
        config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL="2")
        log = open(tmp_path / f"worker-{index}.log", "w")
        workers.append(subprocess.Popen([sys.executable, *command], stdout=log, stderr=subprocess.STDOUT, env=env))
    assert wait(workers) == [0, 0], (tmp_path / "worker-1.log").read_text()[-3000:]
    report = json.loads((tmp_path / "out" / "mw" / "report.json").read_text())
    accuracy = {row["model"]: row["test_accuracy"] for row in report["models"]}
    assert accuracy["teacher"] > 0.85 and accuracy["student (distilled)"] > 0.7
    assert report["config"]["training"]["strategy"] == "multi_worker"
    assert not os.path.exists(tmp_path / "out" / ".resume")
