"""Transfer sets streamed from a folder, and teacher outputs as shards on disk: real digit images as PNG files."""

import hashlib
import json
import os
import time

import numpy as np
import pytest

import kerasdistill as kd
from kerasdistill import data, models, shards as shards_lib, views as views_lib
from kerasdistill.backend import keras
from kerasdistill.idx import CompressedFileError
from kerasdistill.streams import ArrayStream, ChainStream, DatasetStream, ImageStream

from conftest import accuracy

UNLABELED = 1000


@pytest.fixture(scope="module")
def unlabeled_folder(digits, tmp_path_factory):
    """1,000 real digits (not the labeled ones) as PNG files in two sub-folders, with a hidden folder to skip."""
    folder = tmp_path_factory.mktemp("unlabeled")
    for index, image in enumerate(digits.train.x[-UNLABELED:]):
        sub = folder / f"part{index % 2}"
        sub.mkdir(exist_ok=True)
        keras.utils.save_img(sub / f"{index:04d}.png", image, scale=False)
    (folder / ".ipynb_checkpoints").mkdir()
    keras.utils.save_img(folder / ".ipynb_checkpoints" / "stale.png", digits.train.x[0], scale=False)
    return folder


def digest(image):
    return hashlib.sha1(np.asarray(image, np.uint8).tobytes()).hexdigest()


def test_a_streamed_transfer_set_reads_every_image_once_an_epoch_as_the_array_one_does(digits, unlabeled_folder):
    stream = ImageStream.from_folder(unlabeled_folder, (28, 28, 1))
    assert len(stream) == UNLABELED, "the hidden folder is skipped"
    in_memory = data.load_unlabeled(str(unlabeled_folder), (28, 28, 1))
    labeled = digits.train.x[:200], digits.train.y[:200]
    seen = []
    for x, targets in data.transfer_set(labeled, stream, batch_size=50, labeled_share=0.2, seed=3):
        mask = targets["labeled"].numpy()
        assert x.dtype == np.float32 and mask.sum() == 10
        seen.extend(digest(image) for image in x.numpy()[mask == 0])
    # One epoch (25 batches of 40 unlabeled images): every unlabeled image once, the same pixels as the array
    # path decodes.
    assert set(seen) == {digest(image) for image in in_memory} and len(seen) == UNLABELED

    def first_images(**options):
        return [digest(image) for image in next(iter(data.transfer_set(labeled, stream, batch_size=50, **options)))[0].numpy()[:5]]

    assert first_images(seed=3) == first_images(seed=3), "the same seed, the same order"
    assert first_images(seed=3) != first_images(shuffle=False), "shuffled"


def test_a_stream_of_another_shape_or_scale_is_refused(digits, unlabeled_folder, tmp_path):
    with pytest.raises(ValueError, match=r"shaped like the labeled ones"):
        data.transfer_set((digits.train.x[:100], digits.train.y[:100]), ImageStream.from_folder(unlabeled_folder, (32, 32, 1)))
    with pytest.raises(ValueError, match="scale"):
        data.transfer_set((digits.train.x[:100] / 255.0, digits.train.y[:100]), ImageStream.from_folder(unlabeled_folder, (28, 28, 1)))
    with pytest.raises(ValueError, match="holds no images"):
        ImageStream.from_folder(tmp_path, (28, 28, 1))
    with pytest.raises(FileNotFoundError, match="No folder"):
        ImageStream.from_folder(tmp_path / "gone", (28, 28, 1))



def test_shards_of_a_folder_whose_images_were_rewritten_at_the_same_size_are_refused(digits, trained_teacher, tmp_path):
    # BMP files have one size for any pixels: only the files' times tell a rewritten folder from the scored one.
    (tmp_path / "images").mkdir()
    for index, image in enumerate(digits.train.x[-40:]):
        keras.utils.save_img(tmp_path / "images" / f"{index:02d}.bmp", np.repeat(image, 3, axis=-1), scale=False)
    stream = ImageStream.from_folder(tmp_path / "images", (28, 28, 1))
    shards = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "shards", verbose=False)
    sizes = [os.path.getsize(path) for path in stream.files]
    time.sleep(0.01)
    keras.utils.save_img(stream.files[0], np.repeat(digits.train.x[0], 3, axis=-1), scale=False)
    assert [os.path.getsize(path) for path in stream.files] == sizes
    with pytest.raises(ValueError, match="other images"):
        shards_lib.sharded_transfer_set((digits.train.x[:100], digits.train.y[:100]), ImageStream.from_folder(tmp_path / "images", (28, 28, 1)), shards, trained_teacher)


def read(shards):
    """Each shard's logits, `(images, classes)` for shards of one view (the images as they are)."""
    return [np.asarray(shards.logits(index))[:, 0] if shards.views == 1 else np.asarray(shards.logits(index)) for index in range(shards.shards)]


def test_shards_resume_after_a_kill_and_two_workers_give_the_same_outputs(trained_teacher, unlabeled_folder, tmp_path, monkeypatch):
    stream = ImageStream.from_folder(unlabeled_folder, (28, 28, 1))
    whole = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "whole", shard_size=300, verbose=False)
    assert whole.shards == 4 and not whole.missing()
    expected = np.asarray(trained_teacher.predict(data.load_unlabeled(str(unlabeled_folder), (28, 28, 1)), verbose=0))
    np.testing.assert_allclose(np.concatenate(read(whole)), expected, atol=2e-3)  # uint8 rounding of the resize

    written = []
    real_write = shards_lib.write_bytes

    def counted(path, payload, limit=None):
        if len(written) == limit:
            raise KeyboardInterrupt
        written.append(os.path.basename(path))
        return real_write(path, payload)

    monkeypatch.setattr(shards_lib, "write_bytes", lambda path, payload: counted(path, payload, limit=2))
    with pytest.raises(KeyboardInterrupt):
        shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "killed", shard_size=300, verbose=False)
    # Resumed from another working folder, the same folder named by a relative path: the 2 missing shards only.
    written.clear()
    monkeypatch.setattr(shards_lib, "write_bytes", counted)
    monkeypatch.chdir(tmp_path)
    resumed = shards_lib.score_to_shards(trained_teacher, stream, "killed", shard_size=300, verbose=False)
    assert written == ["shard-00002.logits", "shard-00003.logits"], written
    for ours, theirs in zip(read(resumed), read(whole)):
        np.testing.assert_array_equal(ours, theirs)

    first = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "workers", shard_size=300, worker=(0, 2), verbose=False)
    assert first.missing() == [1, 3], "worker 0 of 2 scores shards 0 and 2"
    shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "workers", shard_size=300, worker=(1, 2), verbose=False)
    for ours, theirs in zip(read(shards_lib.load_teacher_shards(tmp_path / "workers", teacher=trained_teacher)), read(whole)):
        np.testing.assert_array_equal(ours, theirs)

    # Top-3 shards hold the 3 largest logits exactly, at their classes; the others are left out.
    top = np.concatenate(read(shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "top3", shard_size=300, top_k=3, verbose=False)))
    full = np.concatenate(read(whole))
    kept = np.argsort(-full, axis=1)[:, :3]
    np.testing.assert_array_equal(np.take_along_axis(top, kept, axis=1), np.take_along_axis(full, kept, axis=1))
    assert np.sum(top == shards_lib.LEFT_OUT_LOGIT) == 7 * UNLABELED

    other = models.build("convnet_teacher", (28, 28, 1), 10)
    with pytest.raises(ValueError, match="another scoring pass .*fingerprint"):
        shards_lib.score_to_shards(other, stream, tmp_path / "whole", shard_size=300, verbose=False)
    with pytest.raises(ValueError, match="another teacher's outputs"):
        shards_lib.load_teacher_shards(tmp_path / "whole", teacher=other)
    with pytest.raises(ValueError, match="misses 2 of its 4 shards"):
        os.remove(tmp_path / "workers" / "shard-00003.logits")
        (tmp_path / "workers" / "shard-00001.logits").write_bytes(b"short")
        shards_lib.load_teacher_shards(tmp_path / "workers")
    with pytest.raises(ValueError, match="misses 2 of its 4 shards .* after waiting 0.3 s"):
        shards_lib.load_teacher_shards(tmp_path / "workers", wait=0.3)
    # Another worker finishes its shards while this one waits.
    import shutil
    import threading

    def finish():
        for name in ("shard-00001.logits", "shard-00003.logits"):
            shutil.copy(tmp_path / "whole" / name, tmp_path / "workers" / name)

    threading.Timer(0.5, finish).start()
    assert not shards_lib.load_teacher_shards(tmp_path / "workers", teacher=trained_teacher, wait=60).missing()


def test_bfloat16_scoring_is_recorded_close_to_float32_and_a_second_pass_reuses_the_trace(trained_teacher, unlabeled_folder, tmp_path):
    stream = ImageStream.from_folder(unlabeled_folder, (28, 28, 1)).part(0, 300)
    full = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "float32", verbose=False)
    scorer = shards_lib._scorer(trained_teacher, "logits", None, False, "float32", None)
    traced = scorer.experimental_get_tracing_count()
    shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "again", verbose=False)
    assert traced >= 1 and scorer.experimental_get_tracing_count() == traced, "the second pass reuses the first one's trace"

    half = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "bfloat16", precision="bfloat16", verbose=False)
    assert json.loads((tmp_path / "bfloat16" / "manifest.json").read_text())["precision"] == "bfloat16"
    ours, theirs = np.concatenate(read(half)), np.concatenate(read(full))
    assert not np.array_equal(ours, theirs), "computed in bfloat16"
    assert np.mean(ours.argmax(1) == theirs.argmax(1)) > 0.97
    np.testing.assert_allclose(ours, theirs, atol=0.1 * np.abs(theirs).max())
    assert trained_teacher.dtype_policy.name == "float32", "the teacher itself is untouched"
    # The teacher changed: the next bfloat16 pass scores the new weights.
    changed = keras.models.clone_model(trained_teacher)
    changed.set_weights(trained_teacher.get_weights())
    before = np.concatenate(read(shards_lib.score_to_shards(changed, stream, tmp_path / "before", precision="bfloat16", verbose=False)))
    changed.layers[-1].bias.assign(changed.layers[-1].bias + 8.0)
    after = np.concatenate(read(shards_lib.score_to_shards(changed, stream, tmp_path / "after", precision="bfloat16", verbose=False)))
    np.testing.assert_allclose(after - before, 8.0, atol=0.25)
    with pytest.raises(ValueError, match="another scoring pass .*precision"):
        shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "float32", precision="bfloat16", verbose=False)
    with pytest.raises(ValueError, match="precision is one of 'float32', 'bfloat16'"):
        shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "other", precision="float16", verbose=False)


def test_sharded_batches_pair_each_image_with_its_own_teacher_outputs(digits, trained_teacher, unlabeled_folder, tmp_path):
    stream = ImageStream.from_folder(unlabeled_folder, (28, 28, 1))
    shards = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "shards", shard_size=300, verbose=False)
    distiller = kd.Distiller(trained_teacher, models.build("convnet_student", (28, 28, 1), 10))
    distiller.compile(optimizer="adam")
    labeled = digits.train.x[:100], digits.train.y[:100]
    rows = 0
    # Shuffled shards, a shuffle buffer, a last shard of 100: every row's outputs are its own image's.
    for x, targets in shards_lib.sharded_transfer_set(labeled, stream, shards, distiller, batch_size=64, buffer=128):
        expected = np.asarray(trained_teacher(x, training=False))
        np.testing.assert_allclose(targets["teacher_logits"].numpy()[:, 0], expected, atol=2e-3)
        rows += int(np.sum(targets["labeled"].numpy() == 0))
    assert rows >= UNLABELED

    distiller.compile(optimizer="adam", distillation_loss_fn="logit_mse")
    top = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "top3", top_k=3, verbose=False)
    with pytest.raises(ValueError, match="logit_mse compares raw logits"):
        shards_lib.sharded_transfer_set(labeled, stream, top, distiller)
    partial = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "half", shard_size=300, worker=(0, 2), verbose=False)
    with pytest.raises(ValueError, match="a worker has not finished"):
        shards_lib.sharded_transfer_set(labeled, stream, partial, distiller)
    with pytest.raises(ValueError, match="other images"):
        shards_lib.sharded_transfer_set(labeled, ImageStream(stream.files[::-1], (28, 28, 1)), shards, distiller)


def test_a_view_made_in_a_batch_has_the_pixels_of_the_same_view_made_alone():
    # The teacher scores views made in batches; the student trains on views made one image at a time.
    import tensorflow as tf

    images = np.random.default_rng(1).uniform(0, 255, (300, 32, 32, 3)).astype(np.float32)
    parameters = tf.stack([views_lib.draw(views_lib.VIEWED, 3, position, 1)[0] for position in range(300)])
    batched = views_lib.apply(images, parameters).numpy()
    alone = np.stack([views_lib.apply_one(tf.constant(image), parameter).numpy() for image, parameter in zip(images, parameters)])
    np.testing.assert_array_equal(batched, alone)
    assert not np.array_equal(batched, images), "the views move the pixels"


def test_shards_of_augmented_views_give_the_student_the_pixels_the_teacher_scored(digits, trained_teacher, unlabeled_folder, tmp_path, monkeypatch):
    stream = ImageStream.from_folder(unlabeled_folder, (28, 28, 1)).part(0, 300)
    options = dict(shard_size=128, augmentation=["translate", "crop", "rotate"], views=4, seed=5, verbose=False)
    shards = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "views", **options)
    logits = np.concatenate(read(shards))
    assert logits.shape == (300, 4, 10) and shards.names == ("translate", "crop", "rotate")
    plain = np.asarray(trained_teacher.predict(np.concatenate([b.numpy() for b in stream.dataset().batch(300)]).astype(np.float32), verbose=0))
    assert np.abs(logits - plain[:, None]).max() > 1.0, "the teacher scored moved images, not the images themselves"
    # Every view of every image, made again from the stored parameters: the rows a pass may give.
    images = np.concatenate([b.numpy() for b in stream.dataset().batch(300)])
    parameters = np.concatenate([np.asarray(shards.parameters(index)) for index in range(shards.shards)])
    made = {digest(view): (row, k) for k in range(4) for row, view in enumerate(views_lib.apply(images, parameters[:, k]).numpy())}
    assert len(made) > 1150, "the 4 views of an image differ"

    # A pass killed after its first shard resumes with the same views and outputs; two workers give them too.
    real_write = shards_lib.write_bytes
    written = []

    def killed(path, payload):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(path)
        return real_write(path, payload)

    monkeypatch.setattr(shards_lib, "write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "killed", **options)
    monkeypatch.setattr(shards_lib, "write_bytes", real_write)
    for worker in ((0, 2), (1, 2)):
        shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "workers", worker=worker, **options)
    for folder in ("killed", "workers"):
        again = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / folder, **options)
        for index in range(shards.shards):
            for part in shards.parts():
                assert (tmp_path / folder / f"shard-{index:05d}.{part}").read_bytes() == (tmp_path / "views" / f"shard-{index:05d}.{part}").read_bytes(), (folder, part)
        assert again.missing() == []

    labeled = digits.train.x[:100], digits.train.y[:100]
    batches = shards_lib.sharded_transfer_set(labeled, stream, shards, trained_teacher, batch_size=60, labeled_share=1 / 6, seed=2)
    passes = []
    for _ in range(2):
        seen = []
        for x, targets in batches:
            # Each row (labeled ones too) carries the teacher's outputs on exactly its pixels.
            np.testing.assert_allclose(targets["teacher_logits"].numpy()[:, 0], np.asarray(trained_teacher(x, training=False)), atol=2e-3)
            seen.extend(made[digest(image)] for image in x.numpy()[targets["labeled"].numpy() == 0])
        assert sorted(row for row, _ in seen) == list(range(300)), "every image once a pass"
        passes.append(dict(seen))
    changed = sum(passes[0][row] != passes[1][row] for row in range(300))
    assert 150 < changed < 300, f"a view drawn afresh each pass ({changed} of 300 images changed view)"

    with pytest.raises(ValueError, match="another scoring pass .*views"):
        shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "views", **{**options, "views": 2})
    with pytest.raises(ValueError, match="mixup mixes two images"):
        shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "mixed", augmentation=["crop", "mixup"], views=2)
    with pytest.raises(ValueError, match="no augmentation was given"):
        shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "none", views=2)
    with pytest.raises(ValueError, match=r"seed is a whole number in \[-2\*\*63, 2\*\*63\)"):
        shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "huge", augmentation=["crop"], seed=2**64)
    assert not (tmp_path / "huge").exists(), "refused before the folder is claimed"
    # numpy integers are whole numbers too: the same shards as Python's.
    again = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "views", **{**options, "views": np.int64(4), "seed": np.int64(5)})
    assert again.manifest() == shards.manifest()


def test_a_student_distilled_from_shards_learns_with_full_and_top_k_outputs(digits, trained_teacher, unlabeled_folder, tmp_path):
    stream = ImageStream.from_folder(unlabeled_folder, (28, 28, 1))
    labeled = digits.train.x[:100], digits.train.y[:100]
    scores = {}
    for top_k in (None, 3):
        shards = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / f"top{top_k}", shard_size=256, top_k=top_k, verbose=False)
        keras.utils.set_random_seed(1)
        student = models.build("convnet_student", (28, 28, 1), 10)
        distiller = kd.Distiller(trained_teacher, student)
        distiller.compile(optimizer=keras.optimizers.Adam(2e-3), alpha=0.1, temperature=4.0)
        teacher_before = [np.array(w) for w in trained_teacher.weights]
        batches = shards_lib.sharded_transfer_set(labeled, stream, shards, distiller, batch_size=64, seed=0)
        distiller.fit(batches, epochs=3, verbose=0)
        scores[top_k] = accuracy(student, *digits.test)
        for old, new in zip(teacher_before, trained_teacher.weights):
            np.testing.assert_array_equal(old, np.array(new))
    # 100 labels alone give about 0.6 here; the teacher's outputs on 1,000 more images lift the student well above.
    assert scores[None] > 0.8 and scores[3] > 0.8, scores
    # 3 logits and 3 classes an image instead of 10 logits.
    assert os.path.getsize(tmp_path / "top3" / "shard-00000.values") * 2 < os.path.getsize(tmp_path / "topNone" / "shard-00000.logits") * 0.7


def write_idx(path, images):
    """An uncompressed IDX images file (magic 0x00000803, three big-endian sizes, the bytes), as MNIST ships it."""
    header = bytes([0, 0, 8, 3]) + b"".join(int(side).to_bytes(4, "big") for side in images.shape)
    path.write_bytes(header + np.ascontiguousarray(images, np.uint8).tobytes())
    return path


def test_array_files_stream_rows_from_disk_and_their_shards_pair_each_row_with_its_outputs(digits, trained_teacher, tmp_path):
    images = digits.train.x[-UNLABELED:].astype(np.uint8)
    np.save(tmp_path / "x.npy", images)
    np.savez(tmp_path / "x.npz", x=images, y=np.zeros(len(images)))
    labeled = digits.train.x[:200], digits.train.y[:200]
    for path in (tmp_path / "x.npy", tmp_path / "x.npz", write_idx(tmp_path / "x-idx3-ubyte", images[..., 0])):
        stream = ArrayStream.from_file(path, (28, 28, 1))
        assert isinstance(stream.array, np.memmap) and len(stream) == UNLABELED and stream.dtype == np.uint8
        seen = []
        for x, targets in data.transfer_set(labeled, stream, batch_size=50, labeled_share=0.2, seed=3):
            seen.extend(digest(image) for image in x.numpy()[targets["labeled"].numpy() == 0])
        assert sorted(seen) == sorted(digest(image) for image in images), path.name

    stream = ArrayStream.from_file(tmp_path / "x.npy", (28, 28, 1))
    shards = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "shards", shard_size=300, verbose=False)
    np.testing.assert_allclose(np.concatenate(read(shards)), trained_teacher.predict(images.astype(np.float32), verbose=0), atol=1e-4)
    distiller = kd.Distiller(trained_teacher, models.build("convnet_student", (28, 28, 1), 10))
    distiller.compile(optimizer="adam")
    seen = set()
    for x, targets in shards_lib.sharded_transfer_set(labeled, stream, shards, distiller, batch_size=64, buffer=128):
        np.testing.assert_allclose(targets["teacher_logits"].numpy()[:, 0], trained_teacher(x, training=False), atol=1e-4)
        seen.update(digest(image) for image in x.numpy()[targets["labeled"].numpy() == 0])
    assert seen == {digest(image) for image in images}, "every image of the file, each with its own outputs"
    np.save(tmp_path / "x.npy", images[::-1])
    with pytest.raises(ValueError, match="other images"):
        shards_lib.sharded_transfer_set(labeled, ArrayStream.from_file(tmp_path / "x.npy", (28, 28, 1)), shards, distiller)


def test_labeled_images_stream_too_each_with_its_own_label_and_teacher_outputs(digits, trained_teacher, unlabeled_folder, tmp_path):
    x, y = digits.train.x[:300].astype(np.uint8), digits.train.y[:300]
    np.save(tmp_path / "labeled.npy", x)
    labeled = ArrayStream.from_file(tmp_path / "labeled.npy", (28, 28, 1)), y
    label_of = {digest(image): label for image, label in zip(x, y)}
    stream = ImageStream.from_folder(unlabeled_folder, (28, 28, 1))
    seen = 0
    for images, targets in data.transfer_set(labeled, stream, batch_size=50, labeled_share=0.2, seed=3):
        mask = targets["labeled"].numpy() == 1
        for image, label in zip(images.numpy()[mask], targets["labels"].numpy()[mask]):
            assert label_of[digest(image)] == label
            seen += 1
    assert seen == 10 * 25, "10 labeled rows in each of the 25 batches (1,000 unlabeled, 40 a batch)"

    shards = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "shards", verbose=False)
    distiller = kd.Distiller(trained_teacher, models.build("convnet_student", (28, 28, 1), 10))
    distiller.compile(optimizer="adam")
    for images, targets in shards_lib.sharded_transfer_set(labeled, stream, shards, distiller, batch_size=64):
        mask = targets["labeled"].numpy() == 1
        np.testing.assert_allclose(targets["teacher_logits"].numpy()[mask, 0], trained_teacher(images.numpy()[mask], training=False), atol=2e-3)
        assert all(label_of[digest(image)] == label for image, label in zip(images.numpy()[mask], targets["labels"].numpy()[mask]))
    with pytest.raises(ValueError, match="same non-zero length; got 300 and 299"):
        data.transfer_set((labeled[0], y[:299]), stream)


def test_compressed_array_files_are_unpacked_to_stream_and_files_that_cannot_stream_are_refused(digits, tmp_path, monkeypatch):
    images = digits.train.x[:50].astype(np.uint8)
    np.savez_compressed(tmp_path / "packed.npz", x=images)
    with pytest.raises(CompressedFileError, match=r"np.savez_compressed.*np.savez"):
        ArrayStream.from_file(tmp_path / "packed.npz", (28, 28, 1))
    import gzip

    (tmp_path / "x-idx3-ubyte.gz").write_bytes(gzip.compress(write_idx(tmp_path / "raw", images[..., 0]).read_bytes()))
    with pytest.raises(CompressedFileError, match="gunzip"):
        ArrayStream.from_file(tmp_path / "x-idx3-ubyte.gz", (28, 28, 1))
    # Given a folder, both are decompressed there once, in chunks, and streamed from the copy.
    unpacked = tmp_path / "unpacked"
    for name in ("packed.npz", "x-idx3-ubyte.gz"):
        stream = ArrayStream.from_file(tmp_path / name, (28, 28, 1), unpack_to=unpacked)
        assert isinstance(stream.array, np.memmap) and str(unpacked) in stream.array.filename and stream.source == str(tmp_path / name)
        np.testing.assert_array_equal(np.concatenate([b.numpy() for b in stream.dataset().batch(64)]), images)
    copies = sorted(unpacked.iterdir())
    assert len(copies) == 2 and not [path for path in copies if path.name.startswith(".tmp")]
    stamps = [path.stat().st_mtime_ns for path in copies]
    ArrayStream.from_file(tmp_path / "packed.npz", (28, 28, 1), unpack_to=unpacked)
    assert [path.stat().st_mtime_ns for path in copies] == stamps, "an unchanged file is not decompressed again"
    np.savez_compressed(tmp_path / "packed.npz", x=images[::-1])
    os.utime(tmp_path / "packed.npz", ns=(stamps[0], stamps[0]))  # changed content, same size and time (cp -p)
    changed = ArrayStream.from_file(tmp_path / "packed.npz", (28, 28, 1), unpack_to=unpacked)
    np.testing.assert_array_equal(np.asarray(changed.array), images[::-1])
    assert len(list(unpacked.iterdir())) == 2, "the copy of the file as it was is removed"
    # A copy the disk cannot hold is refused before anything is written, gzipped or not.
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    for name in ("packed.npz", "x-idx3-ubyte.gz"):
        with pytest.raises(OSError, match=r"needs its 0.00 GiB decompressed in .*which has 0.00 GiB free"):
            ArrayStream.from_file(tmp_path / name, (28, 28, 1), unpack_to=tmp_path / "full")
    assert list((tmp_path / "full").iterdir()) == []
    monkeypatch.undo()
    # A truncated or damaged file is named as such, and nothing of it is kept.
    packed = (tmp_path / "packed.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(packed[: len(packed) // 2])
    (tmp_path / "cut-idx3-ubyte.gz").write_bytes((tmp_path / "x-idx3-ubyte.gz").read_bytes()[:-2000])
    for name in ("cut.npz", "cut-idx3-ubyte.gz"):
        with pytest.raises(ValueError, match=f"{name} cannot be read: it is corrupt or truncated"):
            ArrayStream.from_file(tmp_path / name, (28, 28, 1), unpack_to=tmp_path / "cut")
    assert not (tmp_path / "cut").exists() or list((tmp_path / "cut").iterdir()) == []
    # The run gives its resume state: a compressed unlabeled_path streams; without a folder it is read whole.
    from kerasdistill import config, sources

    resolved = config.validate({"data": {"unlabeled_path": str(tmp_path / "packed.npz")}})["data"]
    assert isinstance(sources.load_data(resolved, 0, unpack_to=str(tmp_path / "state")).unlabeled.parts[1], ArrayStream)
    assert isinstance(sources.load_data(resolved, 0).unlabeled, np.ndarray)
    np.savez(tmp_path / "other.npz", images=images)
    with pytest.raises(ValueError, match=r"must hold an array 'x'.*\['images'\]"):
        ArrayStream.from_file(tmp_path / "other.npz", (28, 28, 1))
    np.save(tmp_path / "x.npy", images)
    with pytest.raises(ValueError, match=r"shape \(28, 28, 1\) but the labeled images have \(32, 32, 1\)"):
        ArrayStream.from_file(tmp_path / "x.npy", (32, 32, 1))
    (tmp_path / "short").write_bytes((tmp_path / "raw").read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        ArrayStream.from_file(tmp_path / "short", (28, 28, 1))


def write_tfrecords(folder, images, files=2):
    """`images` as PNG bytes in `tf.train.Example`s under "image", spread over `files` TFRecord files (as TFDS writes them)."""
    import tensorflow as tf

    folder.mkdir()
    for part in range(files):
        with tf.io.TFRecordWriter(str(folder / f"unlabeled-{part:05d}.tfrecord")) as writer:
            for image in images[part::files]:
                encoded = tf.io.encode_png(np.asarray(image, np.uint8)).numpy()
                feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return str(folder / "unlabeled-*.tfrecord")


def test_tfrecord_files_and_datasets_stream_in_their_order_and_pair_with_their_shards(digits, trained_teacher, tmp_path):
    import tensorflow as tf

    images = digits.train.x[-UNLABELED:].astype(np.uint8)
    stream = DatasetStream.from_tfrecord(write_tfrecords(tmp_path / "records", images), (28, 28, 1), shuffle_buffer=256)
    in_order = np.concatenate([images[0::2], images[1::2]])  # file by file
    assert len(stream) == UNLABELED and stream.dtype == np.uint8
    assert [digest(image) for batch in stream.dataset().batch(256) for image in batch.numpy()] == [digest(image) for image in in_order]
    labeled = digits.train.x[:200], digits.train.y[:200]
    seen = []
    for x, targets in data.transfer_set(labeled, stream, batch_size=50, labeled_share=0.2, seed=3):
        seen.extend(digest(image) for image in x.numpy()[targets["labeled"].numpy() == 0])
    assert sorted(seen) == sorted(digest(image) for image in images) and seen != [digest(image) for image in in_order]

    shards = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "shards", shard_size=300, worker=(0, 2), verbose=False)
    assert shards.missing() == [1, 3]
    shards = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "shards", shard_size=300, worker=(1, 2), verbose=False)
    np.testing.assert_allclose(np.concatenate(read(shards)), trained_teacher.predict(in_order.astype(np.float32), verbose=0), atol=1e-4)
    distiller = kd.Distiller(trained_teacher, models.build("convnet_student", (28, 28, 1), 10))
    distiller.compile(optimizer="adam")
    seen = set()
    for x, targets in shards_lib.sharded_transfer_set(labeled, stream, shards, distiller, batch_size=64):
        np.testing.assert_allclose(targets["teacher_logits"].numpy()[:, 0], trained_teacher(x, training=False), atol=1e-4)
        seen.update(digest(image) for image in x.numpy()[targets["labeled"].numpy() == 0])
    assert seen == {digest(image) for image in images}
    # Views of records: scored by position (two workers), each view made again beside its outputs after the buffer.
    options = dict(shard_size=300, augmentation=["rotate", "crop"], views=3, verbose=False)
    for worker in ((0, 2), (1, 2)):
        viewed = shards_lib.score_to_shards(trained_teacher, stream, tmp_path / "views", worker=worker, **options)
    for x, targets in shards_lib.sharded_transfer_set(labeled, stream, viewed, distiller, batch_size=64):
        np.testing.assert_allclose(targets["teacher_logits"].numpy()[:, 0], trained_teacher(x, training=False), atol=2e-3)

    # Any tf.data pipeline: batched or not, (images, labels) or images, its length known or counted.
    batched = tf.data.Dataset.from_tensor_slices((images, np.zeros(UNLABELED))).batch(32)
    assert len(DatasetStream(batched)) == UNLABELED
    filtered = tf.data.Dataset.from_tensor_slices(images).filter(lambda image: tf.reduce_max(image) > 0)
    assert len(DatasetStream(filtered)) == UNLABELED
    assert DatasetStream(filtered).digest() != DatasetStream(filtered.map(lambda image: 255 - image)).digest()
    with pytest.raises(ValueError, match=r"A tf.data dataset repeats forever: .* Remove its .repeat\(\)"):
        DatasetStream(filtered.repeat())
    with pytest.raises(ValueError, match="images of one known shape"):
        DatasetStream(tf.data.Dataset.from_tensor_slices(images.reshape(UNLABELED, -1)))
    with pytest.raises(FileNotFoundError, match="No TFRecord file matches"):
        DatasetStream.from_tfrecord(str(tmp_path / "none-*.tfrecord"), (28, 28, 1))
    # The image feature is found in the first record (here "image"); a record without one is named.
    with tf.io.TFRecordWriter(str(tmp_path / "labels.tfrecord")) as writer:
        writer.write(tf.train.Example(features=tf.train.Features(feature={"label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))})).SerializeToString())
    with pytest.raises(ValueError, match="hold no features of encoded images .*label.*image_key"):
        DatasetStream.from_tfrecord(str(tmp_path / "labels.tfrecord"), (28, 28, 1))

    # A TFDS folder of several splits is refused; gzipped records are read as they are.
    import shutil

    (tmp_path / "tfds").mkdir()
    for split in ("train", "test"):
        shutil.copy(tmp_path / "records" / "unlabeled-00000.tfrecord", tmp_path / "tfds" / f"digits-{split}.tfrecord-00000-of-00001")
    with pytest.raises(ValueError, match=r"several splits \(test, train\)"):
        DatasetStream.from_tfrecord(tmp_path / "tfds", (28, 28, 1))
    with tf.io.TFRecordWriter(str(tmp_path / "packed.tfrecord"), options="GZIP") as writer:
        for record in tf.data.TFRecordDataset(str(tmp_path / "records" / "unlabeled-00000.tfrecord")):
            writer.write(record.numpy())
    packed = DatasetStream.from_tfrecord(tmp_path / "packed.tfrecord", (28, 28, 1))
    assert [digest(image) for batch in packed.dataset().batch(500) for image in batch.numpy()] == [digest(image) for image in images[0::2]]

    # The run reads a folder of TFRecord files as its streamed transfer set.
    from kerasdistill import config, sources

    resolved = config.validate({"data": {"unlabeled_path": str(tmp_path / "records")}})
    chained = sources.load_data(resolved["data"], 0).unlabeled
    assert isinstance(chained.parts[1], DatasetStream) and len(chained.parts[1]) == UNLABELED


def test_a_chain_stream_reads_every_image_of_its_parts_once_a_pass(digits, unlabeled_folder):
    held = digits.train.x[:300]
    chain = ChainStream([ArrayStream(held), ImageStream.from_folder(unlabeled_folder, (28, 28, 1))])
    assert len(chain) == 300 + UNLABELED and chain.dtype == np.float32
    expected = sorted([digest(image) for image in held] + [digest(image) for image in data.load_unlabeled(str(unlabeled_folder), (28, 28, 1))])
    shuffled = chain.dataset(shuffle=True, seed=4).batch(128)
    passes = [[digest(image) for batch in shuffled for image in batch.numpy()] for _ in range(2)]
    assert sorted(passes[0]) == sorted(passes[1]) == expected
    assert passes[0] != passes[1], "reshuffled each pass"
    assert passes[0][:300] != [digest(image) for image in held], "the parts are interleaved"


def test_a_chain_stream_is_scored_part_by_part_and_each_image_meets_its_own_outputs(digits, trained_teacher, unlabeled_folder, tmp_path):
    chain = ChainStream([ArrayStream(digits.train.x[:300]), ImageStream.from_folder(unlabeled_folder, (28, 28, 1))])
    shards = shards_lib.score_to_shards(trained_teacher, chain, tmp_path / "shards", shard_size=256, verbose=False)
    assert [len(part) for part in chain.parts] == [part.count for part in shards]
    assert sorted(os.listdir(tmp_path / "shards")) == ["part-0", "part-1"]
    distiller = kd.Distiller(trained_teacher, models.build("convnet_student", (28, 28, 1), 10))
    distiller.compile(optimizer="adam")
    seen = set()
    for x, targets in shards_lib.sharded_transfer_set((digits.train.x[300:400], digits.train.y[300:400]), chain, shards, distiller, batch_size=64):
        np.testing.assert_allclose(targets["teacher_logits"].numpy()[:, 0], trained_teacher(x, training=False), atol=2e-3)
        seen.update(digest(image) for image in x.numpy()[targets["labeled"].numpy() == 0])
    assert len(seen) == 300 + UNLABELED
    with pytest.raises(ValueError, match="takes the tuple of 2 shards"):
        shards_lib.sharded_transfer_set((digits.train.x[300:400], digits.train.y[300:400]), chain, shards[1], distiller)
    # Views of both parts (each part its own seed), every row with the outputs of its own view.
    viewed = shards_lib.score_to_shards(trained_teacher, chain, tmp_path / "views", shard_size=256, augmentation=["translate"], views=2, seed=4, verbose=False)
    assert [part.seed for part in viewed] == [4, 5]
    for x, targets in shards_lib.sharded_transfer_set((digits.train.x[300:400], digits.train.y[300:400]), chain, viewed, distiller, batch_size=64):
        np.testing.assert_allclose(targets["teacher_logits"].numpy()[:, 0], trained_teacher(x, training=False), atol=2e-3)
    with pytest.raises(ValueError, match="scored on different views"):
        shards_lib.sharded_transfer_set((digits.train.x[300:400], digits.train.y[300:400]), chain, (viewed[0], shards[1]), distiller)


@pytest.fixture(scope="module")
def labeled_folder(digits, tmp_path_factory):
    """180 real digits of classes 0-2 as PNG files, one folder per class (a user's labeled folder)."""
    folder = tmp_path_factory.mktemp("labeled")
    for label in range(3):
        (folder / f"digit_{label}").mkdir()
        for index, image in enumerate(digits.train.x[:1500][digits.train.y[:1500] == label][:60]):
            keras.utils.save_img(folder / f"digit_{label}" / f"{index:03d}.png", image, scale=False)
    return folder


def three_class_unlabeled(digits, folder, count=300):
    """`count` other digits of classes 0-2 as PNG files in `folder`."""
    folder.mkdir()
    images = digits.train.x[-UNLABELED:][digits.train.y[-UNLABELED:] < 3][:count]
    for index, image in enumerate(images):
        keras.utils.save_img(folder / f"{index:04d}.png", image, scale=False)
    return folder


def quick_run(data_section, epochs):
    """A run's settings with `data_section`: alpha and T fixed (no search), a float32 plain file, no plots."""
    return {
        "data": data_section,
        "training": {"epochs": epochs},
        "distillation": {"alpha": 0.1, "temperature": 4.0},
        "export": {"quantizations": ["float32"], "targets": ["plain"]},
        "report": {"plots": False},
    }


def test_a_run_streams_an_unlabeled_folder_beside_every_label(digits, labeled_folder, tmp_path):
    from kerasdistill import pipeline, runs

    unlabeled = three_class_unlabeled(digits, tmp_path / "more")
    settings = quick_run({"source": "image_folder", "path": str(labeled_folder), "unlabeled_path": str(unlabeled)}, epochs=2)
    from kerasdistill import config, sources

    resolved = config.validate(settings)
    loaded = sources.load_data(resolved["data"], resolved["training"]["seed"])
    assert isinstance(loaded.unlabeled, ImageStream) and len(loaded.unlabeled) == 300
    report = pipeline.run(settings, output=str(tmp_path / "out"), name="streamed", verbose=False)
    assert report["verdict"].endswith("with 300 unlabeled images in the transfer set.")
    assert {row["model"] for row in report["models"]} >= {"teacher", "student (scratch)"}
    record = json.loads((tmp_path / "out" / "streamed" / runs.SPLITS_FILE).read_text())
    assert record["unlabeled"] == {"samples": 300, "sha256": loaded.unlabeled.digest()}

    # Refused before anything trains: stored views of images mixed together, a test image in the folder, an undecodable file.
    with pytest.raises(ValueError, match=r"teacher_views stores .* 2 view\(s\) .* streamed transfer set \(data.unlabeled_path.*: mixup mixes two images"):
        pipeline.run({**settings, "distillation": {"augmentation": ["translate", "mixup"], "teacher_views": 2, "alpha": 0}}, output=str(tmp_path / "views"), verbose=False)
    test_image = loaded.test.x[0]
    keras.utils.save_img(unlabeled / "leak.png", test_image, scale=False)
    with pytest.raises(ValueError, match="1 of the .* test images"):
        pipeline.run(settings, output=str(tmp_path / "leak"), verbose=False)
    # Resized (28 to 24 pixels, fractional values), the copy of a test image is still found.
    with pytest.raises(ValueError, match="1 of the .* test images"):
        pipeline.run({**settings, "data": {**settings["data"], "image_size": [24, 24]}}, output=str(tmp_path / "resized"), verbose=False)
    (unlabeled / "leak.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot be decoded: .*leak.png"):
        pipeline.run(settings, output=str(tmp_path / "broken"), verbose=False)
    assert not (tmp_path / "views").exists() or not list((tmp_path / "views").glob("*/teacher.keras"))


def test_a_run_distills_a_streamed_folder_on_stored_views_and_a_killed_run_keeps_its_shards(digits, labeled_folder, tmp_path, monkeypatch):
    from kerasdistill import pipeline

    unlabeled = three_class_unlabeled(digits, tmp_path / "more")
    settings = quick_run({"source": "image_folder", "path": str(labeled_folder), "unlabeled_path": str(unlabeled)}, epochs=5)
    settings["distillation"].update(augmentation=["translate", "crop"], teacher_views=3)
    made = []
    real_batches = pipeline.sharded_transfer_set

    def killed(labeled, images, shards, *args, **kwargs):
        made.append(shards)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "sharded_transfer_set", killed)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(settings, output=str(tmp_path / "out"), name="views", verbose=False)
    (shards,) = made
    assert (shards.count, shards.views, shards.names) == (300, 3, ("translate", "crop")) and not shards.missing()
    assert shards.folder.startswith(str(tmp_path / "out" / ".resume"))

    # Resumed: the shards the killed run finished are read, not scored again; the student trains on their views.
    written = []
    monkeypatch.setattr(shards_lib, "write_bytes", lambda path, payload: written.append(path))
    first_batches = []

    def looked_at(*args, **kwargs):
        batches = real_batches(*args, **kwargs)
        first_batches.append(next(iter(batches)))
        return batches

    monkeypatch.setattr(pipeline, "sharded_transfer_set", looked_at)
    report = pipeline.run(settings, output=str(tmp_path / "out"), name="views", verbose=False)
    assert written == [] and len(first_batches) == 1
    assert first_batches[0][1]["teacher_logits"].shape[1:] == (1, 3), "the teacher's stored outputs, one teacher"
    distilled = next(row for row in report["models"] if row["model"].startswith("student (distilled"))
    assert distilled["test_accuracy"] > 0.8, distilled
    assert not (tmp_path / "out" / ".resume").exists(), "a finished run removes its resume state and its shards"


def test_a_file_of_a_streamed_folder_gone_mid_run_is_named_and_the_run_resumes_once_it_is_back(digits, labeled_folder, tmp_path, monkeypatch):
    from kerasdistill import pipeline, sources

    unlabeled = three_class_unlabeled(digits, tmp_path / "more", count=120)
    settings = quick_run({"source": "image_folder", "path": str(labeled_folder), "unlabeled_path": str(unlabeled)}, epochs=1)
    checked = sources.check_streams
    moved = unlabeled / "0007.png", tmp_path / "0007.png"

    def then_moved(splits, say=None):
        checked(splits, say)
        os.replace(*moved)  # after the run's checks: the distillation's first epoch meets the gap

    monkeypatch.setattr(sources, "check_streams", then_moved)
    with pytest.raises(ValueError, match=r"streamed transfer set \(data.unlabeled_path\) changed while the run trained: .*0007.png.*put them back"):
        pipeline.run(settings, output=str(tmp_path / "out"), name="gap", verbose=False)
    monkeypatch.setattr(sources, "check_streams", checked)
    os.replace(*reversed(moved))
    report = pipeline.run(settings, output=str(tmp_path / "out"), name="gap", verbose=False)
    assert report["verdict"].endswith("with 120 unlabeled images in the transfer set.")


@pytest.mark.slow
def test_a_run_streams_unlabeled_images_beside_the_labels_it_holds_out(digits, unlabeled_folder, tmp_path):
    from kerasdistill import config, pipeline, sources

    # The embedded digits keep 1,000 labels by default; the other training images join the streamed folder.
    settings = quick_run({"unlabeled_path": str(unlabeled_folder)}, epochs=1)
    resolved = config.validate(settings)
    loaded = sources.load_data(resolved["data"], resolved["training"]["seed"])
    held_out, folder = loaded.unlabeled.parts
    assert isinstance(loaded.unlabeled, ChainStream) and isinstance(folder, ImageStream)
    assert len(held_out) + len(loaded.train.x) == 4000 - len(loaded.val.x) and len(folder) == UNLABELED
    report = pipeline.run(settings, output=str(tmp_path / "out"), name="chained", verbose=False)
    assert report["verdict"].endswith(f"with {len(loaded.unlabeled)} unlabeled images in the transfer set.")

    # A .npy file is mapped into memory and streamed the same way.
    np.save(tmp_path / "more.npy", digits.train.x[-UNLABELED:].astype(np.uint8))
    from_file = sources.load_data({**resolved["data"], "unlabeled_path": str(tmp_path / "more.npy")}, 0).unlabeled.parts[1]
    assert isinstance(from_file, ArrayStream) and isinstance(from_file.array, np.memmap)


def test_a_stream_converts_any_image_format_to_the_channels_asked(digits, tmp_path):
    # TensorFlow's decoders give a GIF or a BMP no grey, a JPEG no alpha: the stream converts.
    grey = digits.train.x[0]
    rgba = np.concatenate([np.repeat(grey, 3, axis=-1), np.full_like(grey, 255)], axis=-1)
    for name, image in (("a.gif", np.repeat(grey, 3, axis=-1)), ("b.bmp", np.repeat(grey, 3, axis=-1)), ("c.png", rgba), ("d.jpg", grey)):
        keras.utils.save_img(tmp_path / name, image, scale=False)
    for channels in (1, 3, 4):
        stream = ImageStream.from_folder(tmp_path, (28, 28, channels))
        images = np.concatenate([batch.numpy() for batch in stream.dataset().batch(4)])
        assert images.shape == (4, 28, 28, channels)
        # The lossless files give the digit's own pixels back.
        np.testing.assert_allclose(images[:3, ..., 0], np.repeat(grey[None, ..., 0], 3, axis=0), atol=1)
