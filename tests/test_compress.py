"""`compress`: candidates, slimming, the search against a budget, its resume, and the command."""

import json
import os

import numpy as np
import pytest

from kerasdistill import candidates, compress, data, models
from kerasdistill.backend import keras

from conftest import accuracy


def test_slimming_keeps_the_strongest_filters_with_the_teachers_weights(digits, trained_teacher):
    same = candidates.slim(trained_teacher, 1.0)
    np.testing.assert_allclose(same.predict(digits.test.x[:64], verbose=0), trained_teacher.predict(digits.test.x[:64], verbose=0), atol=1e-5)

    half = candidates.slim(trained_teacher, 0.5)
    first = trained_teacher.get_layer("conv1").get_weights()[0]
    kept = np.sort(np.argsort(-np.abs(first).reshape(-1, first.shape[-1]).sum(0))[: first.shape[-1] // 2])
    np.testing.assert_array_equal(half.get_layer("conv1").get_weights()[0], first[..., kept])
    np.testing.assert_array_equal(half.get_layer("bn1").get_weights()[0], trained_teacher.get_layer("bn1").get_weights()[0][kept])
    assert half.output_shape == trained_teacher.output_shape and half.count_params() < trained_teacher.count_params() / 3
    # Without any retraining, half of the filters keep most of what the teacher knows (chance: 0.1).
    assert accuracy(half, *digits.test) > 0.6

    # A teacher ending in its own Softmax layer keeps every class.
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(6, name="scores")(keras.layers.Flatten()(keras.layers.Conv2D(8, 3)(inputs)))
    probabilities = keras.Model(inputs, keras.layers.Softmax()(hidden))
    assert candidates.slim(probabilities, 0.25).output_shape == (None, 6)
    sequential = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3), keras.layers.ReLU(), keras.layers.Flatten(), keras.layers.Dense(4)])
    assert candidates.slim(sequential, 0.5).get_layer(index=0).filters == 4
    inputs = keras.Input((8, 8, 3))
    merged = keras.layers.Add(name="skip")([keras.layers.Conv2D(3, 1)(inputs), inputs])
    residual = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(merged)))
    with pytest.raises(ValueError, match="layer skip \\(Add\\) merges 2 inputs"):
        candidates.slim(residual, 0.5)
    assert candidates.family("slim", residual, (8, 8, 3), 2) == ([], ["slim: layer skip (Add) merges 2 inputs; filters cannot be removed consistently across a merge"])


def few_labels(digits):
    """300 labels, 1,200 unlabeled images (the others of the training split), the digits' validation and test."""
    splits = data.hold_out_labels(digits, 300, seed=0)
    return splits._replace(unlabeled=splits.unlabeled[:1200])


def test_the_search_chooses_the_smallest_file_that_meets_the_budget_and_resumes_after_a_kill(digits, trained_teacher, tmp_path, monkeypatch):
    splits = few_labels(digits)
    settings = {"rungs": (1, 3), "quantizations": ("int8",), "candidates": ["convnet-w4-d2", "convnet-w8-d2", "convnet-w32-d3", "slim-0.25"], "verbose": False}
    trained = []
    real_train = compress._Search.train

    def killed_in_the_last_rung(search, name, epochs):
        if len(trained) == 5:  # 4 candidates at rung 1, then the second of the 2 that go on
            raise KeyboardInterrupt
        trained.append((name, epochs))
        return real_train(search, name, epochs)

    monkeypatch.setattr(compress._Search, "train", killed_in_the_last_rung)
    with pytest.raises(KeyboardInterrupt):
        compress.compress(trained_teacher, splits, tmp_path / "search", compress.Budget(max_drop=10.0), **settings)
    monkeypatch.setattr(compress._Search, "train", lambda search, name, epochs: trained.append((name, epochs)) or real_train(search, name, epochs))
    report = compress.compress(trained_teacher, splits, tmp_path / "search", compress.Budget(max_drop=10.0), **settings)
    # The kill lost nothing finished: 4 candidates at rung 1, 2 go on to rung 3, each trained once; the resumed
    # search does not halve rung 1 again.
    first_rung = [name for name, epochs in trained if epochs == 1]
    assert sorted(first_rung) == sorted(settings["candidates"]) and len(trained) == 6, trained
    candidates_ = report["candidates"]
    assert sum(record["status"].startswith("stopped after rung 1") for record in candidates_.values()) == 2
    finalists = [name for name, record in candidates_.items() if record["status"] == "finalist"]
    assert sorted(finalists) == sorted(name for name, epochs in trained if epochs == 3)
    assert sorted(os.listdir(tmp_path / "search" / "candidates")) == sorted(
        [f"{name}-e3.weights.h5" for name in finalists] + [f"{name}-e1.weights.h5" for name in set(settings["candidates"]) - set(finalists)]
    )
    teacher = report["teacher"]
    files = {file["file"]: file for file in report["files"]}
    assert set(files) == {f"{name}_int8.tflite" for name in finalists}
    for file in files.values():
        assert os.path.getsize(tmp_path / "search" / file["file"]) == pytest.approx(file["size_kib"] * 1024)
        assert file["drop_points"] == pytest.approx(100 * (teacher["val_accuracy"] - file["val_accuracy"]))
    meeting = [file for file in files.values() if file["drop_points"] <= 10.0]
    chosen = report["chosen"]
    # 3 epochs on 300 labels and 1,200 teacher-scored images: a file a tenth of the teacher's within 10 points.
    assert report["meets_budget"] and meeting
    assert chosen["size_kib"] == min(file["size_kib"] for file in meeting)
    assert chosen["size_kib"] < teacher["int8"]["size_kib"] / 10 and chosen["val_accuracy"] >= teacher["val_accuracy"] - 0.10
    assert report["verdict"].startswith("Chosen, the smallest file that meets the budget")
    assert chosen["file"] in report["pareto_front"]
    assert os.path.getsize(tmp_path / "search" / "pareto.png") > 10_000
    assert json.loads((tmp_path / "search" / "report.json").read_text())["chosen"] == chosen

    # Another budget in the same folder is another search: refused, its files kept.
    with pytest.raises(ValueError, match="holds another search \\(its budget differ"):
        compress.compress(trained_teacher, splits, tmp_path / "search", compress.Budget(max_drop=1.0), **settings)


def test_a_budget_nothing_can_meet_drops_every_candidate_untrained_and_says_so(digits, trained_teacher, tmp_path):
    # One-hot labels, as keras.utils.to_categorical gives them.
    splits = few_labels(digits)
    splits = splits._replace(**{part: data.Split(split.x, keras.utils.to_categorical(split.y, 10)) for part, split in splits._asdict().items() if part in ("train", "val", "test")})
    report = compress.compress(
        trained_teacher, splits, tmp_path / "tiny", compress.Budget(max_size_kib=2), candidates=["convnet-w4-d2", "slim-0.125"], rungs=(1,), verbose=False
    )
    for record in report["candidates"].values():
        assert record["status"].startswith("dropped before training:") and "KiB > 2.0 KiB" in record["status"] and not record["rungs"]
    assert report["chosen"] is None and report["verdict"].startswith("No candidate was trained to the end (at most 2.0 KiB)")
    assert report["teacher"]["int8"]["test_accuracy"] == pytest.approx(report["teacher"]["test_accuracy"], abs=0.02)


def test_bad_budgets_and_settings_are_refused_before_any_work(digits, trained_teacher, tmp_path):
    with pytest.raises(ValueError, match="Give a budget"):
        compress.Budget()
    with pytest.raises(ValueError, match="max_size_kib must be a finite number >= 0"):
        compress.Budget(max_size_kib=-1)
    splits = few_labels(digits)
    for settings, message in (
        ({"rungs": (3, 1)}, "rungs are increasing epoch counts"),
        ({"families": ["resnet"]}, "families must name some of convnet, mobilenet_v2, slim"),
        ({"candidates": ["convnet-w3-d2"]}, "Unknown candidate\\(s\\) convnet-w3-d2 .* known: convnet-w4-d2"),
    ):
        with pytest.raises(ValueError, match=message):
            compress.compress(trained_teacher, splits, tmp_path / "out", compress.Budget(max_drop=1), verbose=False, **settings)
        assert not (tmp_path / "out" / compress.STATE).exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    with pytest.raises(FileExistsError, match="already holds files but no search"):
        compress.compress(trained_teacher, splits, tmp_path / "mine", compress.Budget(max_drop=1), candidates=["slim-0.25"], verbose=False)
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]


@pytest.mark.slow
def test_a_candidate_trains_on_the_same_data_order_whatever_trains_before_it(digits, trained_teacher, tmp_path):
    splits = few_labels(digits)
    scores = {}
    for names in (["slim-0.25"], ["convnet-w4-d2", "slim-0.25"]):
        report = compress.compress(
            trained_teacher, splits, tmp_path / "-".join(names), compress.Budget(max_drop=100), candidates=names, rungs=(1,), quantizations=("int8",), verbose=False
        )
        scores[len(names)] = report["candidates"]["slim-0.25"]["rungs"][0]["val_accuracy"]
    assert scores[1] == scores[2], scores


@pytest.mark.slow
def test_the_compress_command_runs_a_search_on_a_config(digits, trained_teacher, tmp_path, capsys):
    from kerasdistill import cli

    teacher = tmp_path / "teacher.keras"
    trained_teacher.save(teacher)
    config = tmp_path / "compress.yaml"
    config.write_text("data: {labeled_size: 300}\ncompress: {rungs: [1], quantizations: [int8]}\n")
    output = tmp_path / "out"
    code = cli.main(["compress", str(teacher), "--config", str(config), "--max-size", "60", "--candidates", "convnet-w8-d2,slim-0.25", "--output", str(output)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads((output / "report.json").read_text())
    assert report["budget"] == {"max_drop": None, "max_size_kib": 60.0, "max_latency_ms": None}
    assert report["meets_budget"] and report["chosen"]["size_kib"] <= 60 and "<- chosen" in printed

    # A streamed transfer set (a compressed .npz file beside the labels held out): decompressed once into the search's
    # folder, streamed from there, the teacher's outputs in shards.
    np.savez_compressed(tmp_path / "more.npz", x=digits.train.x[-600:].astype(np.uint8))
    args = ["compress", str(teacher), "--config", str(config), "--max-drop", "0", "--candidates", "convnet-w4-d2", "--unlabeled", str(tmp_path / "more.npz")]
    assert cli.main([*args, "--output", str(tmp_path / "streamed")]) == 1, "no file within 0 points of the teacher: exit 1"
    assert "No file meets the budget" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "streamed" / "teacher-shards")) == ["part-0", "part-1"]
    assert [name[-4:] for name in os.listdir(tmp_path / "streamed" / "unpacked")] == [".npy"]
    (tmp_path / "a-file").write_text("mine")
    assert cli.main([*args, "--output", str(tmp_path / "a-file")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err and (tmp_path / "a-file").read_text() == "mine"
    # A folder of the user's own files is refused, and nothing is decompressed into it.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert cli.main([*args, "--output", str(tmp_path / "mine")]) == 2
    assert "already holds files but no search" in capsys.readouterr().err and os.listdir(tmp_path / "mine") == ["notes.txt"]

    assert cli.main(["compress", str(tmp_path / "missing.keras"), "--max-drop", "1"]) == 2
    assert "No file at" in capsys.readouterr().err
    assert cli.main(["compress", str(teacher), "--output", str(tmp_path / "none")]) == 2
    assert "Give a budget" in capsys.readouterr().err
    other = models.build("convnet_teacher", (32, 32, 3), 10)
    other.save(tmp_path / "colour.keras")
    assert cli.main(["compress", str(tmp_path / "colour.keras"), "--max-drop", "1", "--output", str(tmp_path / "colour")]) == 2
    assert "takes (32, 32, 3)" in capsys.readouterr().err
