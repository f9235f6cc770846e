"""TFLite model metadata: what MediaPipe Tasks and the TFLite Task Library read from a classifier file.

The metadata is a `ModelMetadata` flatbuffer (the published
`metadata_schema.fbs`, file identifier `M001`) stored in one of the model's
buffers and named `TFLITE_METADATA` in the model's `metadata` list; the label
file it names is packed in a zip archive appended to the model. Both are
written here with the `flatbuffers` package (no tflite-support, whose last
release cannot be installed beside TensorFlow 2.21).

```python
content = write_metadata(content, ClassifierMetadata(
    name="flowers", labels=("daisy", "rose"), mean=(127.5,), std=(127.5,),
    color_space="RGB", image_size=(96, 96)))
print(read_metadata("student_int8_classifier.tflite").labels)
```
"""

import dataclasses
import io
import os
import struct
import zipfile
import zlib

import flatbuffers
import numpy as np
from flatbuffers import number_types
from flatbuffers.table import Table

from kerasdistill.data import check_class_names

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
# The features used here (image and feature content, normalization, stats,
# tensor-axis label files) all date from the first metadata parser version.
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
COLOR_SPACES = {"UNKNOWN": 0, "RGB": 1, "GRAYSCALE": 2}

# Enum and union values of metadata_schema.fbs.
_TENSOR_AXIS_LABELS = 2
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2
_NORMALIZATION_OPTIONS = 1
# Field slots of tflite's schema.fbs `Model`, `SubGraph`, `Tensor`, `Metadata` and `Buffer` tables.
_MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_METADATA = 2, 4, 6
_SUBGRAPH_TENSORS, _SUBGRAPH_OUTPUTS = 0, 2
_TENSOR_SHAPE = 0
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA = 0


# What reading a damaged flatbuffer or packed zip raises (flatbuffers,
# struct and zipfile check little; a wrong offset surfaces as any of these).
_DAMAGED = (
    struct.error, IndexError, KeyError, TypeError, OverflowError, UnicodeDecodeError, EOFError,
    NotImplementedError, RuntimeError, zlib.error, zipfile.BadZipFile,
)


@dataclasses.dataclass(frozen=True)
class ClassifierMetadata:
    """The metadata of an image-classifier `.tflite` file.

    Args:
        name: the model's name.
        labels: one class name per output score, in output order.
        mean: per-channel (or one) mean of the input normalization.
        std: per-channel (or one) standard deviation; the model takes
            `(pixel - mean) / std` for pixels in 0-255.
        color_space: `"RGB"` or `"GRAYSCALE"`.
        image_size: `(height, width)` of the input image.
        description: what the model does.
        version: the model's version.
        author: who made it.
        license: its license.
        input_name: the input tensor's metadata name.
        output_name: the output tensor's metadata name.
        min_parser_version: the oldest metadata parser that can read it.
    """

    name: str
    labels: tuple
    mean: tuple
    std: tuple
    color_space: str
    image_size: tuple
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    input_name: str = "image"
    output_name: str = "probability"
    min_parser_version: str = MIN_PARSER_VERSION

    def __post_init__(self):
        if self.color_space not in COLOR_SPACES:
            raise ValueError(f"color_space must be one of {tuple(COLOR_SPACES)}; got {self.color_space!r}.")
        check_class_names(self.labels, "labels")
        if len(self.mean) != len(self.std) or not self.mean or any(s <= 0 for s in self.std):
            raise ValueError(f"mean and std must be equally long, with every std > 0; got {self.mean} and {self.std}.")

    def to_dict(self):
        return dataclasses.asdict(self)


def write_metadata(content, metadata, overwrite_input_quantization=None):
    """A `.tflite` flatbuffer with `metadata` stored in it and its labels file appended.

    Args:
        content: the `.tflite` file's bytes (one subgraph, one input, one
            output), without metadata.
        metadata: a `ClassifierMetadata`.
        overwrite_input_quantization: `(scale, zero_point)` to set on a
            quantized input tensor, or None to keep the converter's.

    Returns:
        The new file's bytes.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    subgraphs = model.subgraphs or []
    ends = [(len(g.inputs if g.inputs is not None else ()), len(g.outputs if g.outputs is not None else ())) for g in subgraphs]
    if ends != [(1, 1)]:
        raise ValueError(
            "Classifier metadata describes one subgraph with one input and one output; this model has "
            f"{len(subgraphs)} subgraph(s) with (inputs, outputs) {ends}."
        )
    subgraph = subgraphs[0]
    if overwrite_input_quantization is not None:
        quantization = subgraph.tensors[subgraph.inputs[0]].quantization
        quantization.scale = [float(overwrite_input_quantization[0])]
        quantization.zeroPoint = [int(overwrite_input_quantization[1])]
    if any(entry.name.decode() == METADATA_NAME for entry in model.metadata or []):
        raise ValueError("This model already holds TFLite metadata; write metadata on the converter's output.")
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(_metadata_bytes(metadata), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    packed = io.BytesIO(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    packed.seek(0, io.SEEK_END)
    # The labels travel as a zip appended to the model, stored uncompressed
    # as MediaPipe and the Task Library expect.
    with zipfile.ZipFile(packed, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(LABELS_FILE, "\n".join(metadata.labels) + "\n")
    return packed.getvalue()


def read_metadata(model):
    """The `ClassifierMetadata` of a `.tflite` file written by kerasdistill (or any image classifier with metadata).

    Args:
        model: a `.tflite` path or its bytes.

    Returns:
        A `ClassifierMetadata`; `labels` are read from the packed labels file.

    Raises:
        ValueError: the file is not a `.tflite` model, holds no metadata, or
            its metadata or labels are damaged; the message says which.

    Example:

    ```python
    metadata = read_metadata("export/run/student_int8_classifier.tflite")
    print(metadata.labels, metadata.mean, metadata.std)
    ```
    """
    source = "the given bytes" if isinstance(model, (bytes, bytearray)) else os.fspath(model)
    metadata = find_metadata(model)
    if metadata is None:
        raise ValueError(
            f"{source} holds no TFLite metadata. Export it with to_tflite(..., target='classifier') (kerasdistill "
            "export --target classifier) to write metadata and labels."
        )
    return metadata


def find_metadata(model):
    """`read_metadata(model)`, or None for a `.tflite` file without metadata (a plain export)."""
    source = "the given bytes" if isinstance(model, (bytes, bytearray)) else os.fspath(model)
    content = bytes(model) if isinstance(model, (bytes, bytearray)) else _read(source)
    if len(content) < 8 or content[4:8] != MODEL_IDENTIFIER:
        raise ValueError(f"{source} is not a .tflite model (no TFL3 identifier); give a file exported with to_tflite.")
    try:
        buffer = _metadata_buffer(content)
        width = _output_width(content) if buffer is not None else None
    except _DAMAGED as error:
        raise ValueError(f"{source} is a damaged .tflite model ({type(error).__name__}: {error}); export it again.") from None
    if buffer is None:
        return None
    if buffer[4:8] != METADATA_IDENTIFIER:
        raise ValueError(f"The metadata of {source} is damaged (no M001 identifier); export the file again.")
    try:
        fields = _read_model_metadata(buffer)
    except _DAMAGED as error:
        raise ValueError(f"The metadata of {source} is damaged ({type(error).__name__}: {error}); export the file again.") from None
    if fields is None:
        raise ValueError(
            f"The metadata of {source} describes a model that is not an image classifier (one subgraph, one "
            "input, one output); read_metadata reads the classifier files to_tflite(..., target='classifier') writes."
        )
    fields["labels"] = _labels(content, fields.pop("labels_file"), source)
    if width is not None and len(fields["labels"]) != width:
        raise ValueError(
            f"The labels file of {source} holds {len(fields['labels'])} labels but the model outputs {width} class "
            "scores: every name after a mismatch would name the wrong class. Export the file again with one "
            "one-line name per class."
        )
    try:
        return ClassifierMetadata(**fields)
    except ValueError as error:
        raise ValueError(f"The metadata of {source} is not usable: {error}") from None


def _read(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No .tflite file at {path}.")
    with open(path, "rb") as handle:
        return handle.read()


def _labels(content, name, source):
    if name is None:
        raise ValueError(f"The metadata of {source} names no labels file for its output; export it with class names.")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            text = archive.read(name).decode("utf-8")
    except _DAMAGED as error:
        raise ValueError(
            f"The labels file {name} that the metadata of {source} names is missing or damaged "
            f"({type(error).__name__}: {error}); export the file again."
        ) from None
    return tuple(line for line in text.splitlines() if line)


# Writing: tables are built children first, as flatbuffers require.


class _Builder:
    """A `flatbuffers.Builder` with helpers for the few shapes metadata_schema.fbs uses."""

    def __init__(self):
        self.builder = flatbuffers.Builder(1024)

    def string(self, text):
        return self.builder.CreateString(text) if text else None

    def offsets(self, items):
        self.builder.StartVector(4, len(items), 4)
        for item in reversed(items):
            self.builder.PrependUOffsetTRelative(item)
        return self.builder.EndVector()

    def floats(self, values):
        self.builder.StartVector(4, len(values), 4)
        for value in reversed(values):
            self.builder.PrependFloat32(float(value))
        return self.builder.EndVector()

    def table(self, slots, **fields):
        """A table of `slots` fields: `fields` maps `name` to `(slot, kind, value)`, kind offset/uint8/uint32."""
        self.builder.StartObject(slots)
        for slot, kind, value in fields.values():
            if value is None:
                continue
            if kind == "offset":
                self.builder.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "uint8":
                self.builder.PrependUint8Slot(slot, value, 0)
            else:
                self.builder.PrependUint32Slot(slot, value, 0)
        return self.builder.EndObject()


def _metadata_bytes(metadata):
    b = _Builder()
    height, width = metadata.image_size
    size = b.table(2, width=(0, "uint32", int(width)), height=(1, "uint32", int(height)))
    image = b.table(2, color=(0, "uint8", COLOR_SPACES[metadata.color_space]), size=(1, "offset", size))
    normalization = b.table(2, mean=(0, "offset", b.floats(metadata.mean)), std=(1, "offset", b.floats(metadata.std)))
    unit = b.table(2, kind=(0, "uint8", _NORMALIZATION_OPTIONS), options=(1, "offset", normalization))
    lowest = [(0.0 - m) / s for m, s in zip(metadata.mean, metadata.std)]
    highest = [(255.0 - m) / s for m, s in zip(metadata.mean, metadata.std)]
    input_stats = b.table(2, max=(0, "offset", b.floats(highest)), min=(1, "offset", b.floats(lowest)))
    input_content = b.table(3, kind=(0, "uint8", _IMAGE_PROPERTIES), properties=(1, "offset", image))
    input_tensor = b.table(
        7,
        name=(0, "offset", b.string(metadata.input_name)),
        description=(1, "offset", b.string("Input image to be classified.")),
        content=(3, "offset", input_content),
        process_units=(4, "offset", b.offsets([unit])),
        stats=(5, "offset", input_stats),
    )
    labels = b.table(
        5,
        name=(0, "offset", b.string(LABELS_FILE)),
        description=(1, "offset", b.string("Labels for the categories the model can recognize.")),
        type=(2, "uint8", _TENSOR_AXIS_LABELS),
    )
    feature = b.table(0)
    output_content = b.table(3, kind=(0, "uint8", _FEATURE_PROPERTIES), properties=(1, "offset", feature))
    output_stats = b.table(2, max=(0, "offset", b.floats([1.0])), min=(1, "offset", b.floats([0.0])))
    output_tensor = b.table(
        7,
        name=(0, "offset", b.string(metadata.output_name)),
        description=(1, "offset", b.string("Probabilities of the labels respectively.")),
        content=(3, "offset", output_content),
        stats=(5, "offset", output_stats),
        files=(6, "offset", b.offsets([labels])),
    )
    subgraph = b.table(
        10,
        inputs=(2, "offset", b.offsets([input_tensor])),
        outputs=(3, "offset", b.offsets([output_tensor])),
    )
    root = b.table(
        8,
        name=(0, "offset", b.string(metadata.name)),
        description=(1, "offset", b.string(metadata.description)),
        version=(2, "offset", b.string(metadata.version)),
        subgraphs=(3, "offset", b.offsets([subgraph])),
        author=(4, "offset", b.string(metadata.author)),
        license=(5, "offset", b.string(metadata.license)),
        min_parser_version=(7, "offset", b.string(metadata.min_parser_version)),
    )
    b.builder.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.builder.Output())


# Reading: a small reader over flatbuffers' Table, slot by slot.


class _Reader:
    def __init__(self, buffer, position):
        self.table = Table(buffer, position)

    def _offset(self, slot):
        return self.table.Offset(4 + 2 * slot)

    def string(self, slot, default=""):
        offset = self._offset(slot)
        return self.table.String(self.table.Pos + offset).decode("utf-8") if offset else default

    def scalar(self, slot, flags, default=0):
        offset = self._offset(slot)
        return self.table.Get(flags, self.table.Pos + offset) if offset else default

    def child(self, slot):
        offset = self._offset(slot)
        return _Reader(self.table.Bytes, self.table.Indirect(self.table.Pos + offset)) if offset else None

    def children(self, slot):
        offset = self._offset(slot)
        if not offset:
            return []
        start, count = self.table.Vector(offset), self.table.VectorLen(offset)
        return [_Reader(self.table.Bytes, self.table.Indirect(start + 4 * i)) for i in range(count)]

    def floats(self, slot):
        return tuple(float(value) for value in self._numbers(slot, number_types.Float32Flags))

    def ints(self, slot):
        return tuple(int(value) for value in self._numbers(slot, number_types.Int32Flags))

    def _numbers(self, slot, flags):
        """The 4-byte numbers of the vector in `slot` (none when it is absent)."""
        offset = self._offset(slot)
        if not offset:
            return ()
        start, count = self.table.Vector(offset), self.table.VectorLen(offset)
        return [self.table.Get(flags, start + 4 * i) for i in range(count)]

    def data(self, slot):
        offset = self._offset(slot)
        if not offset:
            return b""
        start, count = self.table.Vector(offset), self.table.VectorLen(offset)
        return bytes(self.table.Bytes[start : start + count])


def _root(buffer):
    return _Reader(buffer, struct.unpack_from("<I", buffer, 0)[0])


def _output_width(content):
    """The last dimension of the model's one output (its class scores), or None for other models."""
    subgraphs = _root(bytearray(content)).children(_MODEL_SUBGRAPHS)
    outputs = subgraphs[0].ints(_SUBGRAPH_OUTPUTS) if len(subgraphs) == 1 else ()
    if len(outputs) != 1:
        return None
    shape = subgraphs[0].children(_SUBGRAPH_TENSORS)[outputs[0]].ints(_TENSOR_SHAPE)
    return shape[-1] if shape else None


def _metadata_buffer(content):
    model = _root(bytearray(content))
    for entry in model.children(_MODEL_METADATA):
        if entry.string(_METADATA_NAME) == METADATA_NAME:
            buffers = model.children(_MODEL_BUFFERS)
            return buffers[entry.scalar(_METADATA_BUFFER, number_types.Uint32Flags)].data(_BUFFER_DATA)
    return None


def _read_model_metadata(buffer):
    """The fields of a classifier's `ClassifierMetadata`, or None for metadata of another kind of model."""
    root = _root(bytearray(buffer))
    subgraphs = root.children(3)
    if len(subgraphs) != 1 or len(subgraphs[0].children(2)) != 1 or len(subgraphs[0].children(3)) != 1:
        return None
    (input_tensor,), (output_tensor,) = subgraphs[0].children(2), subgraphs[0].children(3)
    content = input_tensor.child(3)
    image = content.child(1) if content and content.scalar(0, number_types.Uint8Flags) == _IMAGE_PROPERTIES else None
    size = image.child(1) if image else None
    normalization = next(
        (unit.child(1) for unit in input_tensor.children(4) if unit.scalar(0, number_types.Uint8Flags) == _NORMALIZATION_OPTIONS),
        None,
    )
    labels_file = next(
        (item.string(0) for item in output_tensor.children(6) if item.scalar(2, number_types.Int8Flags) == _TENSOR_AXIS_LABELS),
        None,
    )
    color = image.scalar(0, number_types.Int8Flags) if image else 0
    return {
        "name": root.string(0),
        "description": root.string(1),
        "version": root.string(2),
        "author": root.string(4),
        "license": root.string(5),
        "min_parser_version": root.string(7),
        "input_name": input_tensor.string(0),
        "output_name": output_tensor.string(0),
        "color_space": next((key for key, value in COLOR_SPACES.items() if value == color), "UNKNOWN"),
        "image_size": (size.scalar(1, number_types.Uint32Flags), size.scalar(0, number_types.Uint32Flags)) if size else None,
        "mean": normalization.floats(0) if normalization else (0.0,),
        "std": normalization.floats(1) if normalization else (1.0,),
        "labels_file": labels_file,
    }
