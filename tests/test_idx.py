"""The IDX data source (MNIST-format files: Fashion-MNIST, MNIST, KMNIST, EMNIST)."""

import gzip

import numpy as np
import pytest

from kerasdistill import data
from kerasdistill.idx import read_idx

from conftest import fashion_mnist_or_skip


def idx_bytes(array):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, array, compress=True):
    content = idx_bytes(array)
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


def fake_mnist_folder(folder, train=60, test=20, compress=True):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for stem, count in (("train", train), ("t10k", test)):
        write(folder / f"{stem}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), compress)
        write(folder / f"{stem}-labels-idx1-ubyte{suffix}", (np.arange(count) % 10).astype(np.uint8), compress)
    return folder


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trips_every_type_gzipped_or_not(tmp_path, dtype, compress):
    array = (np.arange(24).reshape(2, 3, 4) * 7).astype(dtype)
    read = read_idx(write(tmp_path / "f.idx", array, compress))
    assert read.dtype == dtype and read.shape == (2, 3, 4)
    np.testing.assert_array_equal(read, array)


def test_bad_idx_files_name_the_file_and_the_problem(tmp_path):
    (tmp_path / "text.idx").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="text.idx is not an IDX file: its magic number is 68656c6c"):
        read_idx(tmp_path / "text.idx")
    whole = idx_bytes(np.zeros((10, 28, 28), np.uint8))
    (tmp_path / "cut.idx").write_bytes(whole[:-100])
    with pytest.raises(ValueError, match="cut.idx .* shape \\(10, 28, 28\\) .* truncated or corrupt"):
        read_idx(tmp_path / "cut.idx")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(whole)[:50])
    with pytest.raises(ValueError, match="broken.gz cannot be read"):
        read_idx(tmp_path / "broken.gz")


def test_load_idx_splits_a_folder_of_mnist_format_files(tmp_path):
    splits = data.load_idx(fake_mnist_folder(tmp_path, compress=False), validation_size=10)
    assert splits.train.x.shape == (50, 28, 28, 1) and splits.val.x.shape == (10, 28, 28, 1)
    assert splits.test.x.shape == (20, 28, 28, 1) and splits.num_classes == 10
    assert splits.train.x.dtype == np.float32 and splits.train.x.max() <= 255


def test_load_idx_refuses_mismatched_or_missing_files(tmp_path):
    folder = fake_mnist_folder(tmp_path)
    write(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz holds images of shape \\(20, 28, 28\\) .* \\(19,\\)"):
        data.load_idx(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="must hold one t10k-labels-idx1-ubyte file .* found none"):
        data.load_idx(folder)


def test_real_fashion_mnist_loads_whole():
    splits = data.load_idx(fashion_mnist_or_skip(), validation_size=6000)
    assert (len(splits.train.x), len(splits.val.x), len(splits.test.x)) == (54000, 6000, 10000)
    assert splits.num_classes == 10
    # The published pixel mean of the training images (../shared/data/README.md).
    pixels = np.concatenate([splits.train.x, splits.val.x])
    assert float(pixels.mean() / 255) == pytest.approx(0.2860, abs=5e-4)
    assert np.bincount(splits.test.y).tolist() == [1000] * 10
