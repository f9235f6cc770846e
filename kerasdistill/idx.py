"""The IDX file format of MNIST, Fashion-MNIST, KMNIST and EMNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the
number of dimensions), one big-endian 4-byte size per dimension, then the
values in big-endian order. Files are often gzipped; both forms are read.
"""

import gzip
import math
import os
import zlib

import numpy as np

# Type code of the magic number -> big-endian numpy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CHUNK_BYTES = 1 << 24


class CompressedFileError(ValueError):
    """A file whose values cannot be read in place because it is compressed: read it whole, or decompress it first."""


def read_idx(path):
    """Reads one IDX file (gzipped or not) into a numpy array.

    Args:
        path: the file, e.g. `train-images-idx3-ubyte.gz`.

    Returns:
        A numpy array with the file's shape and type (uint8 for images and
        labels of the MNIST family).

    Raises:
        ValueError: naming the file, when its magic number, sizes or length
            do not make a valid IDX file.

    Example:

    ```python
    images = read_idx("fashion-mnist/t10k-images-idx3-ubyte.gz")  # (10000, 28, 28) uint8
    ```
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No IDX file at {path}.")
    gzipped = _is_gzip(path)
    try:
        with (gzip.open if gzipped else open)(path, "rb") as handle:
            dtype, shape, header = read_idx_header(handle, path)
            declared = header + math.prod(shape) * dtype.itemsize
            # A plain file's size is known before reading it; a gzip is
            # inflated no further than one byte past the size its header declares.
            if gzipped:
                content = _read_at_most(handle, declared - header + 1)
                held = header + len(content)
            else:
                held = os.path.getsize(path)
                content = handle.read(declared - header) if held == declared else None
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path} cannot be read ({error}); it is truncated or not a gzip/IDX file. Copy it again.") from None
    if held != declared:
        raise ValueError(
            f"{path} is not a valid IDX file: its header says shape {shape} ({declared} bytes with the header) but "
            f"it holds {f'more than {declared}' if gzipped and held > declared else held} bytes. The file is truncated or "
            "corrupt; copy it again."
        )
    return np.frombuffer(content, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def map_idx(path):
    """An uncompressed IDX file as a read-only memory map (nothing read until rows are indexed).

    Raises:
        CompressedFileError: the file is gzipped (a memory map needs the raw
            values: `gunzip` it, or read it whole with `read_idx`).
        ValueError: not a valid IDX file.

    Example:

    ```python
    images = map_idx("unlabeled-images-idx3-ubyte")  # rows are read from disk as they are indexed
    ```
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No IDX file at {path}.")
    if _is_gzip(path):
        raise CompressedFileError(f"{path} is gzipped: streaming reads rows in place, which needs the raw file. Run `gunzip {path}` and give the result.")
    with open(path, "rb") as handle:
        dtype, shape, header = read_idx_header(handle, path)
    declared = header + math.prod(shape) * dtype.itemsize
    if os.path.getsize(path) != declared:
        raise ValueError(
            f"{path} is not a valid IDX file: its header says shape {shape} ({declared} bytes with the header) but it "
            f"holds {os.path.getsize(path)} bytes. The file is truncated or corrupt; copy it again."
        )
    return np.memmap(path, dtype=dtype, mode="r", offset=header, shape=shape)


def read_idx_header(handle, path):
    """`(dtype, shape, header bytes)` from the magic number and sizes at the start of an open IDX file."""
    magic = handle.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_TYPES:
        raise ValueError(
            f"{path} is not an IDX file: its magic number is {magic.hex() or 'missing'}, expected 0000 then a "
            f"type code ({', '.join(f'{code:02x}' for code in IDX_TYPES)}) and the number of dimensions."
        )
    ndim = magic[3]
    sizes = handle.read(4 * ndim)
    if ndim == 0 or len(sizes) < 4 * ndim:
        raise ValueError(f"{path} is not a valid IDX file: its header announces {ndim} dimensions but is cut short.")
    shape = tuple(int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(ndim))
    return np.dtype(IDX_TYPES[magic[2]]), shape, 4 + 4 * ndim


def _read_at_most(handle, limit):
    """Up to `limit` bytes of `handle`, read in chunks (a huge `read(n)` would allocate `n` bytes up front)."""
    content = bytearray()
    while len(content) < limit:
        chunk = handle.read(min(CHUNK_BYTES, limit - len(content)))
        if not chunk:
            break
        content += chunk
    return content


def _is_gzip(path):
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"
