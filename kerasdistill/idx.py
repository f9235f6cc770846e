"""The IDX file format of MNIST, Fashion-MNIST, KMNIST and EMNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the
number of dimensions), one big-endian 4-byte size per dimension, then the
values in big-endian order. Files are often gzipped; both forms are read.
"""

import gzip
import os

import numpy as np

# Type code of the magic number -> big-endian numpy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as handle:
            content = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path} cannot be read ({error}); it is truncated or not a gzip/IDX file. Copy it again.") from None
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] not in IDX_TYPES:
        raise ValueError(
            f"{path} is not an IDX file: its magic number is {content[:4].hex() or 'missing'}, expected 0000 then a "
            f"type code ({', '.join(f'{code:02x}' for code in IDX_TYPES)}) and the number of dimensions."
        )
    dtype, ndim = np.dtype(IDX_TYPES[content[2]]), content[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(content) < header:
        raise ValueError(f"{path} is not a valid IDX file: its header announces {ndim} dimensions but is cut short.")
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(content) != expected:
        raise ValueError(
            f"{path} is not a valid IDX file: its header says shape {shape} ({expected} bytes with the header) but it "
            f"holds {len(content)} bytes. The file is truncated or corrupt; copy it again."
        )
    return np.frombuffer(content, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _is_gzip(path):
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"
