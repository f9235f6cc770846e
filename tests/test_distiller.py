"""The Distiller on real digits: it learns, leaves the teacher alone, fits into Keras."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import accuracy, soft_target_kl

import kerasdistill as kd
from kerasdistill import models
from kerasdistill.backend import keras


def snapshot(model):
    return [np.array(w) for w in model.weights]


def compile_default(distiller, **kwargs):
    options = dict(
        optimizer=keras.optimizers.Adam(1e-3),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=kd.losses.SoftTargetKL(),
        alpha=0.1,
        temperature=4.0,
    )
    options.update(kwargs)
    distiller.compile(**options)
    return distiller


def test_distilled_student_learns_close_to_the_teacher_and_the_teacher_is_untouched(
    digits, trained_teacher, trained_student, small_student
):
    before = snapshot(trained_teacher)
    bn_names = [w.path if hasattr(w, "path") else w.name for w in trained_teacher.non_trainable_weights]
    assert any("moving" in name for name in bn_names), "the teacher must have BatchNorm statistics"
    distiller = compile_default(kd.Distiller(teacher=trained_teacher, student=small_student))
    history = distiller.fit(
        digits.train.x, digits.train.y, batch_size=64, epochs=3, validation_data=digits.val, verbose=0
    )

    assert accuracy(trained_teacher, *digits.test) > 0.93
    # Control: the same student trained alone on the labels, 4 epochs (trained_student).
    # Both classify about as well (0.93 and 0.94), but only the distilled one learned the
    # teacher's soft targets: T²·KL to the teacher on the test digits 0.40 against 1.23.
    student_accuracy = accuracy(distiller.student, *digits.test)
    scratch_accuracy = accuracy(trained_student, *digits.test)
    assert student_accuracy > scratch_accuracy - 0.03, (student_accuracy, scratch_accuracy)
    teacher_logits = trained_teacher.predict(digits.test.x, verbose=0)
    distilled_kl, scratch_kl = (
        soft_target_kl(teacher_logits, model.predict(digits.test.x, verbose=0), 4.0)
        for model in (small_student, trained_student)
    )
    assert distilled_kl < 0.5 * scratch_kl, (distilled_kl, scratch_kl)
    # The loss falls epoch by epoch and every term is reported.
    assert history.history["loss"][-1] < history.history["loss"][0]
    for key in ("loss", "student_loss", "distillation_loss", "sparse_categorical_accuracy", "val_loss"):
        assert key in history.history
    # Teacher weights and BatchNorm moving statistics are bit-identical.
    for old, new in zip(before, snapshot(trained_teacher)):
        np.testing.assert_array_equal(old, new)
    assert trained_teacher.trainable, "the user's teacher is not mutated"
    # predict / call give the student's outputs.
    np.testing.assert_allclose(
        distiller.predict(digits.test.x[:8], verbose=0), small_student.predict(digits.test.x[:8], verbose=0), atol=1e-6
    )


def test_no_gradient_and_no_optimizer_state_reach_the_teacher(trained_teacher, small_student, digits):
    distiller = compile_default(kd.Distiller(trained_teacher, small_student))
    distiller.train_on_batch(digits.train.x[:32], digits.train.y[:32])
    student_ids = {id(v) for v in small_student.trainable_weights}
    assert {id(v) for v in distiller.trainable_weights} == student_ids
    teacher_ids = {id(v) for v in trained_teacher.weights}
    slots = [v for v in distiller.optimizer.variables if len(v.shape) > 0]
    # Adam keeps two slots per student variable and none for the teacher.
    assert len(slots) == 2 * len(small_student.trainable_weights)
    assert not teacher_ids & {id(v) for v in distiller.optimizer.variables}
    # The gradient of the training loss with respect to the teacher is absent.
    x = tf.constant(digits.train.x[:16])
    with tf.GradientTape() as tape:
        teacher_logits = distiller.teacher_logits(x)
        total = distiller.compute_losses(digits.train.y[:16], small_student(x, training=True), teacher_logits)["loss"]
    gradients = tape.gradient(total, trained_teacher.trainable_weights)
    assert all(g is None for g in gradients)


def test_keras_io_example_code_runs_unchanged(digits, trained_teacher, small_student):
    # The compile call of keras.io/examples/vision/knowledge_distillation.
    distiller = kd.Distiller(student=small_student, teacher=trained_teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=0.1,
        temperature=10,
    )
    distiller.fit(digits.train.x[:1024], digits.train.y[:1024], epochs=1, verbose=0)
    results = distiller.evaluate(digits.test.x, digits.test.y, verbose=0, return_dict=True)
    assert results["sparse_categorical_accuracy"] > 0.5
    # A plain Keras KL on softened probabilities, scaled by T², is SoftTargetKL.
    x = tf.constant(digits.test.x[:64])
    teacher_logits = distiller.teacher_logits(x)
    student_logits = small_student(x, training=False)
    plain = distiller.compute_losses(None, student_logits, teacher_logits)["distillation_loss"]
    expected = kd.losses.SoftTargetKL(temperature=10)(teacher_logits, student_logits)
    assert float(plain) == pytest.approx(float(expected), rel=1e-4)


def with_softmax(model):
    return keras.Sequential([model, keras.layers.Softmax()], name=f"{model.name}_softmax")


def test_softmax_teacher_is_read_as_probabilities_and_gives_the_same_loss(digits, trained_teacher, small_student):
    logits_distiller = compile_default(kd.Distiller(trained_teacher, small_student))
    probs_teacher = with_softmax(trained_teacher)
    probs_distiller = compile_default(kd.Distiller(probs_teacher, small_student))
    assert probs_distiller.teacher_output_kind == "probabilities"
    assert logits_distiller.teacher_output_kind == "logits"
    x = tf.constant(digits.test.x[:128])
    y = digits.test.y[:128]
    student = small_student(x, training=False)
    from_logits = logits_distiller.compute_losses(y, student, logits_distiller.teacher_logits(x))
    from_probs = probs_distiller.compute_losses(y, student, probs_distiller.teacher_logits(x))
    assert from_logits.keys() == from_probs.keys() == {"loss", "student_loss", "distillation_loss"}
    for key, value in from_logits.items():
        assert float(value) == pytest.approx(float(from_probs[key]), rel=1e-3, abs=1e-5)


def test_probabilities_declared_as_logits_are_refused(trained_teacher, small_student):
    with pytest.raises(ValueError, match="outputs sum to 1.*teacher_outputs='probabilities'"):
        kd.Distiller(with_softmax(trained_teacher), small_student, teacher_outputs="logits")
    with pytest.raises(ValueError, match="do not sum to 1.*student_outputs='logits'"):
        kd.Distiller(trained_teacher, small_student, student_outputs="probabilities")


def test_softmax_student_trains_with_its_own_crossentropy(digits, trained_teacher, small_student):
    student = with_softmax(small_student)
    distiller = kd.Distiller(trained_teacher, student)
    assert distiller.student_output_kind == "probabilities"
    distiller.compile(optimizer="adam", metrics=["accuracy"], student_loss_fn="sparse_categorical_crossentropy")
    history = distiller.fit(digits.train.x[:1024], digits.train.y[:1024], batch_size=64, epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    with pytest.raises(ValueError, match="from_logits=True, but the student outputs probabilities"):
        distiller.compile(
            optimizer="adam", student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )


def test_fit_accepts_datasets_sample_weights_one_hot_labels_and_validation_split(
    digits, trained_teacher, small_student
):
    x, y = digits.train.x[:512], digits.train.y[:512]
    distiller = kd.Distiller(trained_teacher, small_student)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    dataset = tf.data.Dataset.from_tensor_slices((x, y, np.ones(len(x), np.float32))).batch(64)
    assert "loss" in distiller.fit(dataset, epochs=1, verbose=0).history
    one_hot = keras.utils.to_categorical(y, 10)
    distiller.compile(optimizer="adam", metrics=["accuracy"])  # "accuracy" resolves per label kind
    history = distiller.fit(x, one_hot, batch_size=64, epochs=1, validation_split=0.25, verbose=0)
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history.history)
    # Unlabeled batches train on the teacher alone: their loss is T²·KL(teacher || student),
    # computed here by hand, and a fit on them moves the student toward the teacher.
    unlabeled = tf.data.Dataset.from_tensor_slices(x).batch(64)
    distiller.compile(optimizer="adam")  # a fresh optimizer: no momentum left from the labeled fits
    teacher_logits = trained_teacher.predict(x, verbose=0)
    before = distiller.evaluate(unlabeled, verbose=0, return_dict=True)["loss"]
    expected = soft_target_kl(teacher_logits, small_student.predict(x, verbose=0), distiller.temperature)
    assert before == pytest.approx(expected, rel=1e-4)
    distiller.fit(unlabeled, epochs=1, verbose=0)
    after = distiller.evaluate(unlabeled, verbose=0, return_dict=True)["loss"]
    assert after == pytest.approx(
        soft_target_kl(teacher_logits, small_student.predict(x, verbose=0), distiller.temperature), rel=1e-4
    )
    # 8 Adam steps: about 16% lower; with the gradient stopped, BatchNorm's statistics alone move it about 6%.
    assert after < 0.9 * before, (before, after)


def test_zero_sample_weights_make_no_loss(digits, trained_teacher, small_student):
    distiller = compile_default(kd.Distiller(trained_teacher, small_student))
    results = distiller.evaluate(
        digits.test.x[:64], digits.test.y[:64], sample_weight=np.zeros(64), verbose=0, return_dict=True
    )
    assert results["loss"] == pytest.approx(0.0, abs=1e-7)


def test_evaluate_reports_the_mean_over_all_batches_not_the_last(digits, trained_teacher, small_student):
    distiller = compile_default(kd.Distiller(trained_teacher, small_student), alpha=0.3)
    x, y = digits.test.x[:500], digits.test.y[:500]
    results = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)  # last batch has 52
    teacher_logits = distiller.teacher_logits(tf.constant(x))
    losses = distiller.compute_losses(y, small_student(x, training=False), teacher_logits)
    for key in ("loss", "student_loss", "distillation_loss"):
        assert results[key] == pytest.approx(float(losses[key]), rel=1e-4)
    assert results["student_loss"] == pytest.approx(
        float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, small_student(x))), rel=1e-4
    )


def test_callbacks_checkpoint_early_stopping_backup_and_restore(tmp_path, digits, trained_teacher, small_student):
    distiller = compile_default(kd.Distiller(trained_teacher, small_student))
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(tmp_path / "best.weights.h5"), save_weights_only=True, save_best_only=True, monitor="val_loss"
        ),
        # No later epoch can improve by 1e9: training stops after epoch 2 of 5.
        keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e9, patience=1),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
    ]
    history = distiller.fit(
        digits.train.x[:512], digits.train.y[:512], epochs=5, validation_data=digits.val, callbacks=callbacks, verbose=0
    )
    assert len(history.history["loss"]) == 2
    rows = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and {"distillation_loss", "val_sparse_categorical_accuracy", "student_loss"} <= set(rows[0].split(","))
    assert not (tmp_path / "backup").exists(), "Keras' BackupAndRestore removes its backup after success"
    # The checkpoint holds the weights of the epoch with the lowest val_loss.
    saved = compile_default(kd.Distiller(trained_teacher, keras.models.clone_model(small_student)))
    saved.load_weights(tmp_path / "best.weights.h5")
    x = digits.test.x[:16]
    last_is_best = history.history["val_loss"][1] < history.history["val_loss"][0]
    assert np.allclose(saved.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-6) == last_is_best


def test_student_and_whole_distiller_save_and_load(tmp_path, digits, trained_teacher, small_student):
    distiller = compile_default(kd.Distiller(trained_teacher, small_student), alpha=0.25, temperature=5.0)
    distiller.fit(digits.train.x[:256], digits.train.y[:256], epochs=1, verbose=0)
    x = digits.test.x[:32]

    distiller.student.save(tmp_path / "student.keras")
    student = keras.models.load_model(tmp_path / "student.keras")
    np.testing.assert_allclose(student.predict(x, verbose=0), small_student.predict(x, verbose=0), atol=1e-6)

    distiller.save(tmp_path / "distiller.keras")
    restored = keras.models.load_model(tmp_path / "distiller.keras")
    assert isinstance(restored, kd.Distiller)
    assert (restored.alpha, restored.temperature) == (0.25, 5.0)
    assert restored.distillation_loss_fn.temperature == 5.0
    np.testing.assert_allclose(restored.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(
        restored.teacher.predict(x, verbose=0), trained_teacher.predict(x, verbose=0), atol=1e-6
    )
    expected = distiller.evaluate(x, digits.test.y[:32], verbose=0, return_dict=True)
    actual = restored.evaluate(x, digits.test.y[:32], verbose=0, return_dict=True)
    assert actual["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    # Training goes on from the saved optimizer state: its step count and moments.
    assert int(restored.optimizer.iterations) == int(distiller.optimizer.iterations) == 8
    for saved, original in zip(restored.optimizer.variables, distiller.optimizer.variables):
        np.testing.assert_allclose(np.asarray(saved), np.asarray(original), atol=1e-7)
    restored.fit(x, digits.test.y[:32], epochs=1, verbose=0)
    assert int(restored.optimizer.iterations) == 9

    clone = kd.Distiller.from_config(distiller.get_config())
    assert clone.teacher_output_kind == "logits" and clone.student.count_params() == small_student.count_params()


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "0.5", None])
def test_alpha_outside_zero_one_is_refused(trained_teacher, small_student, alpha):
    distiller = kd.Distiller(trained_teacher, small_student)
    with pytest.raises(ValueError, match=r"alpha .* must be in \[0, 1\]"):
        distiller.compile(optimizer="adam", alpha=alpha)


@pytest.mark.parametrize("temperature", [0, -2.0, float("inf"), 1e6])
def test_temperature_not_positive_is_refused(trained_teacher, small_student, temperature):
    distiller = kd.Distiller(trained_teacher, small_student)
    with pytest.raises(ValueError, match=r"temperature must be a number in \(0, 100\]"):
        distiller.compile(optimizer="adam", temperature=temperature)


def test_teacher_and_student_with_different_classes_are_refused(trained_teacher):
    student = models.convnet((28, 28, 1), 7, filters=(4,), dense_units=0)
    with pytest.raises(ValueError, match="teacher outputs 10 class scores but the student outputs 7"):
        kd.Distiller(trained_teacher, student)


def test_teacher_and_student_with_different_inputs_are_refused(trained_teacher):
    student = models.mlp((32, 32, 3), 10)
    with pytest.raises(ValueError, match=r"teacher takes inputs of shape \(28, 28, 1\).*\(32, 32, 3\)"):
        kd.Distiller(trained_teacher, student)


def test_unbuilt_model_is_refused(trained_teacher):
    unbuilt = keras.Sequential([keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="is not built.*keras.Input"):
        kd.Distiller(trained_teacher, unbuilt)


def test_non_models_and_same_model_are_refused(trained_teacher):
    with pytest.raises(TypeError, match="student must be a keras.Model"):
        kd.Distiller(trained_teacher, "student.keras")
    with pytest.raises(ValueError, match="same model object"):
        kd.Distiller(trained_teacher, trained_teacher)


def test_fit_before_compile_says_to_compile(digits, trained_teacher, small_student):
    distiller = kd.Distiller(trained_teacher, small_student)
    for method in (distiller.fit, distiller.evaluate):
        with pytest.raises(ValueError, match=r"Call distiller.compile\(optimizer=.*before"):
            method(digits.test.x[:8], digits.test.y[:8], verbose=0)


def test_compile_refuses_loss_and_a_missing_optimizer(trained_teacher, small_student):
    distiller = kd.Distiller(trained_teacher, small_student)
    with pytest.raises(ValueError, match="student_loss_fn=.*distillation_loss_fn=.*instead of loss="):
        distiller.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="needs an optimizer"):
        distiller.compile()
    with pytest.raises(ValueError, match="Unknown|Could not interpret"):
        distiller.compile(optimizer="adam", distillation_loss_fn="no_such_loss")


def test_distillation_loss_by_name(trained_teacher, small_student, digits):
    distiller = kd.Distiller(trained_teacher, small_student)
    distiller.compile(optimizer="adam", distillation_loss_fn="logit_mse", alpha=0.5)
    assert isinstance(distiller.distillation_loss_fn, kd.losses.LogitMSE)
    distiller.compile(optimizer="adam", distillation_loss_fn="soft_target_kl", temperature=6)
    assert distiller.distillation_loss_fn.temperature == 6.0
    assert np.isfinite(distiller.train_on_batch(digits.train.x[:32], digits.train.y[:32])[0])
