"""Settings chosen on validation by default: the candidates of `auto`, the budget, the probes, the margin, and a
run that records its choice in report.json and config.yaml (which repeats it without a search)."""

import json
import types

import numpy as np
import pytest
import yaml

from kerasdistill import config, data, models, pipeline, selection
from kerasdistill.backend import keras


def test_auto_searches_alpha_and_temperature_and_a_given_value_stays_fixed():
    settings = selection.candidates()
    assert settings[0] == {"alpha": 0.1, "temperature": 4.0}  # the default, the one to beat
    assert {s["alpha"] for s in settings} == {0.0, 0.1, 0.5} and {s["temperature"] for s in settings} == {4.0, 2.0}
    assert selection.candidates(alpha=0.3) == [{"alpha": 0.3, "temperature": 4.0}, {"alpha": 0.3, "temperature": 2.0}]
    assert selection.candidates(alpha=0.3, temperature=6) == [{"alpha": 0.3, "temperature": 6.0}]
    # Mixing augmentations need alpha 0; labels only (alpha 1) needs one temperature.
    assert {s["alpha"] for s in selection.candidates(mixing=True)} == {0.0}
    assert selection.candidates(alpha=1.0) == [{"alpha": 1.0, "temperature": 4.0}]
    # A loss that takes no temperature leaves an auto temperature at its default.
    assert not selection.uses_temperature(["logit_mse"]) and selection.uses_temperature(["soft_target_kl"])
    assert {s["temperature"] for s in selection.candidates(uses_temperature=False)} == {4.0}


def test_the_budget_pays_for_the_challengers_full_training_and_one_epoch_a_probe_at_least():
    six = selection.candidates()
    assert selection.probe_epochs(six, 30, 15) == 3  # (30 - 15) / 5 probes
    assert selection.probe_epochs(six, 19, 15) is None  # 15 + 5 probes of one epoch do not fit in 19: no search
    assert selection.probe_epochs(six, 200, 15) == 15  # never longer than the run's own training
    assert selection.probe_epochs(six[:1], 200, 15) is None  # nothing to search
    # One candidate besides the default: it is the challenger, trained in full, with no probe round.
    assert selection.probe_epochs(six[:2], 15, 15) == 0 and selection.probe_epochs(six[:2], 14, 15) is None
    assert selection.Probe.unprobed(six[:2]).challenger == six[1]


def test_the_challenger_must_beat_the_default_by_more_than_the_validation_noise():
    # 60 validation images at 0.90: one standard error is 3.9 points.
    assert selection.standard_error(0.9, 60) == pytest.approx(0.0387, abs=1e-4)
    assert selection.choose(0.90, 0.93, 60)[0] is False
    assert selection.choose(0.90, 0.95, 60)[0] is True
    # On 5,000 images the same 3 points are far above the noise.
    assert selection.choose(0.90, 0.93, 5000)[0] is True
    # A perfect default still leaves a margin (one sample's worth).
    assert selection.choose(1.0, 1.0, 100) == (False, pytest.approx(0.01))


def test_the_probes_find_the_setting_that_does_not_follow_a_teacher_of_noise(digits):
    # An untrained teacher teaches noise: among the settings, the one that follows the labels alone must win.
    keras.utils.set_random_seed(5)
    noise = models.build("convnet_teacher", (28, 28, 1), 10)
    train = data.to_dataset(digits.train.x[:1000], digits.train.y[:1000], batch_size=64, shuffle=True, seed=0)
    val = data.to_dataset(*digits.val, batch_size=256)
    settings = [{"alpha": 0.1, "temperature": 4.0}, {"alpha": 0.0, "temperature": 1.0}, {"alpha": 1.0, "temperature": 4.0}]
    lines = []
    found = selection.probe(
        noise, lambda: models.build("mlp_student", (28, 28, 1), 10), train, val, settings, epochs=2, say=lines.append
    )
    assert found.challenger == {"alpha": 1.0, "temperature": 4.0}, found.table()
    scores = {row["alpha"]: row["probe"] for row in found.rows}
    assert scores[0.1] is None and scores[1.0] > scores[0.0] + 0.3
    assert lines and "first probe" in lines[0]


def test_a_run_with_every_setting_given_makes_no_search():
    state = types.SimpleNamespace(config=config.validate({"distillation": {"alpha": 0.2, "temperature": 3}}))
    assert pipeline._search_plan(state) == ([{"alpha": 0.2, "temperature": 3.0}], None, None)
    state = types.SimpleNamespace(config=config.validate({"training": {"strategy": "multi_worker"}}))
    _, epochs, why = pipeline._search_plan(state)  # each worker would search: the defaults, said
    assert epochs is None and "multi_worker run does not search" in why and "alpha 0.1, T 4" in why
    state = types.SimpleNamespace(config=config.validate({"distillation": {"search_budget": 0}}))
    _, epochs, why = pipeline._search_plan(state)
    assert epochs is None and "cannot pay for trying 6 settings" in why
    with pytest.raises(ValueError, match="distillation.alpha"):
        config.validate({"distillation": {"alpha": "best"}})


@pytest.mark.slow
def test_a_run_chooses_its_settings_on_validation_and_config_yaml_repeats_them(digits, tmp_path):
    # 1,500 real digits (300 validation, 300 labeled, 900 the transfer set) and 300 test ones, as an .npz.
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=digits.train.x[:1500], y_train=digits.train.y[:1500], x_test=digits.test.x[:300],
             y_test=digits.test.y[:300])
    settings = {
        "data": {"source": "npz", "path": str(path), "validation_size": 300, "labeled_size": 300},
        "training": {"epochs": 4, "patience": 2},
        "distillation": {"search_budget": 3},  # 12 student epochs: the challenger's 4 and 5 probes of 1
        "export": {"quantizations": ["float32"], "targets": ["plain"]},
        "report": {"plots": False},
    }
    report = pipeline.run(settings, output=str(tmp_path / "out"), name="auto", verbose=False)
    chosen = report["settings"]
    search = chosen["search"]
    assert len(search["rows"]) == 6 and search["probe_epochs"] == 1
    default, finals = search["rows"][0], [row for row in search["rows"] if row["final"] is not None]
    assert default["probe"] is None and len(finals) == 2 and default in finals
    challenger = next(row for row in finals if row is not default)
    assert challenger["probe"] == max(row["probe"] for row in search["rows"][1:])
    wins = challenger["final"] > default["final"] + search["margin"]
    kept = challenger if wins else default
    assert (chosen["alpha"], chosen["temperature"]) == (kept["alpha"], kept["temperature"])
    assert search["margin"] == pytest.approx(selection.standard_error(default["final"], 300))
    # The distilled student is the kept finalist, taken at its best validation epoch.
    assert report["shipped"]["validation"]["student (distilled)"] == pytest.approx(kept["final"], abs=1e-6)
    written = yaml.safe_load((tmp_path / "out" / "auto" / "config.yaml").read_text())
    assert written["distillation"]["alpha"] == kept["alpha"] and written["distillation"]["temperature"] == kept["temperature"]
    rerun = types.SimpleNamespace(config=config.validate(written))
    assert pipeline._search_plan(rerun)[1:] == (None, None)  # the saved config repeats the student without a search
    # ... on the stream the finalists trained on: the teacher's outputs cached once.
    assert written["distillation"]["teacher_views"] == search["cached_views"] == 1
    stored = json.loads((tmp_path / "out" / "auto" / "report.json").read_text())
    assert stored["settings"]["search"]["reason"] == search["reason"]


@pytest.mark.slow
def test_cached_teacher_views_without_a_transfer_set_train_one_pass_an_epoch(tmp_path):
    # All labels kept, the teacher's outputs cached on 2 augmented views: an epoch is one pass over the cache
    # (it once repeated forever, and the run never ended).
    settings = {
        "data": {"labeled_size": "all", "validation_size": 200},
        "training": {"epochs": 1},
        "distillation": {"augmentation": ["translate"], "teacher_views": 2, "alpha": 0.1, "temperature": 4},
        "export": {"quantizations": ["float32"], "targets": ["plain"]},
        "report": {"plots": False},
    }
    report = pipeline.run(settings, output=str(tmp_path / "out"), name="views", verbose=False)
    distilled = report["histories"]["distilled"]
    assert len(distilled["loss"]) == 1 and report["models"][2]["best_epoch"] == 1


def test_an_imagenet_backbone_teacher_fine_tunes_its_top_fifth_by_default():
    from kerasdistill import model_specs

    imagenet = config.validate({"teacher": {"model": "backbone:mobilenet_v2"}})["teacher"]
    assert imagenet["fine_tune_layers"] == "auto"
    # MobileNetV2 has 154 layers: the top 31, the neighbourhood of keras.io's guide and kd_gain.py (30).
    assert model_specs.fine_tune_layers(imagenet) == 31
    random = config.validate({"teacher": {"model": "backbone:mobilenet_v2", "weights": None}})["teacher"]
    assert random["fine_tune_layers"] == 0 and model_specs.fine_tune_layers(random) == 0
    assert config.validate({})["teacher"]["fine_tune_layers"] == 0  # a built-in teacher has no backbone
    assert model_specs.fine_tune_layers({**imagenet, "fine_tune_layers": 12}) == 12
    with pytest.raises(ValueError, match="not a backbone"):
        config.validate({"teacher": {"fine_tune_layers": 5}})
