"""The few parts of the ONNX file format the player reads and writes itself, on the protobuf wire.

The playback path does not depend on the `onnx` package (it comes with the training extra):
`read_graph` lists a model file's nodes and initializers, and `write_model` writes a small
graph of float32 and int64 tensors, enough for `timbrel.plugin.stacked_models` to combine the
networks of several models into one onnxruntime session. Field numbers follow onnx.proto3
(IR version 8). A file these functions cannot read raises `ValueError` with the reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

FLOAT, INT64 = 1, 7
"""TensorProto data types."""
_DTYPES = {FLOAT: np.dtype("<f4"), INT64: np.dtype("<i8")}
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_ATTR_FLOAT, _ATTR_INT = 1, 2


@dataclass
class Node:
    """One graph node: its operator, input and output names, and its scalar attributes."""

    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, float | int] = field(default_factory=dict)


@dataclass
class Graph:
    """A model's main graph: nodes in order, and initializers by name."""

    nodes: list[Node]
    initializers: dict[str, np.ndarray]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """A message's fields in order: (number, wire type, value: int for numbers, bytes otherwise)."""
    fields = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, at = _varint(data, at)
        elif wire == _FIXED64:
            value, at = data[at:at + 8], at + 8
        elif wire == _BYTES:
            size, at = _varint(data, at)
            value, at = data[at:at + size], at + size
        elif wire == _FIXED32:
            value, at = data[at:at + 4], at + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if at > len(data):
            raise ValueError("truncated field")
        fields.append((number, wire, value))
    return fields


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _ints(wire: int, value: int | bytes) -> list[int]:
    """A repeated int64 field's values, packed or not."""
    if wire == _VARINT:
        return [_signed(value)]
    out, at = [], 0
    while at < len(value):
        number, at = _varint(value, at)
        out.append(_signed(number))
    return out


def _tensor(data: bytes) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    name, dtype, raw, floats, int64s = "", 0, None, [], []
    for number, wire, value in _fields(data):
        if number == 1:
            dims += _ints(wire, value)
        elif number == 2:
            dtype = value
        elif number == 4:
            floats.append(np.frombuffer(value, "<f4"))  # packed, or one fixed32
        elif number == 7:
            int64s += _ints(wire, value)
        elif number == 8:
            name = value.decode()
        elif number == 9:
            raw = value
        elif number == 14 and value == 1:
            raise ValueError("external tensor data is not supported")
    if dtype not in _DTYPES:
        raise ValueError(f"initializer '{name}' has data type {dtype}, not float32 or int64")
    if raw is not None:
        array = np.frombuffer(raw, _DTYPES[dtype]).copy()
    elif dtype == FLOAT:
        array = np.concatenate(floats).astype(np.float32) if floats else np.zeros(0, np.float32)
    else:
        array = np.array(int64s, dtype=np.int64)
    if array.size != int(np.prod(dims, dtype=np.int64)):
        raise ValueError(f"initializer '{name}' holds {array.size} values for dims {dims}")
    return name, array.reshape(dims)


def _attribute(data: bytes) -> tuple[str, float | int | None]:
    name, value = "", None
    for number, wire, item in _fields(data):
        if number == 1:
            name = item.decode()
        elif number == 2 and wire == _FIXED32:
            value = struct.unpack("<f", item)[0]
        elif number == 3 and wire == _VARINT:
            value = _signed(item)
    return name, value


def _node(data: bytes) -> Node:
    inputs, outputs, op_type, attributes = [], [], "", {}
    for number, _, value in _fields(data):
        if number == 1:
            inputs.append(value.decode())
        elif number == 2:
            outputs.append(value.decode())
        elif number == 4:
            op_type = value.decode()
        elif number == 5:
            name, scalar = _attribute(value)
            if scalar is not None:
                attributes[name] = scalar
    return Node(op_type, tuple(inputs), tuple(outputs), attributes)


def read_graph(model: bytes) -> Graph:
    """The main graph of a serialized ModelProto `model`."""
    graphs = [value for number, wire, value in _fields(model) if number == 7 and wire == _BYTES]
    if len(graphs) != 1:
        raise ValueError("no graph")
    nodes, initializers = [], {}
    for number, wire, value in _fields(graphs[0]):
        if number == 1 and wire == _BYTES:
            nodes.append(_node(value))
        elif number == 5 and wire == _BYTES:
            name, array = _tensor(value)
            initializers[name] = array
    return Graph(nodes, initializers)


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _key(number, _BYTES) + _encode_varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _key(number, _VARINT) + _encode_varint(value)


def _write_tensor(name: str, array: np.ndarray) -> bytes:
    dtype = {np.dtype(np.float32): FLOAT, np.dtype(np.int64): INT64}[array.dtype]
    dims = b"".join(_int_field(1, d) for d in array.shape)
    data = array.astype(array.dtype.newbyteorder("<")).tobytes()
    return dims + _int_field(2, dtype) + _bytes_field(8, name.encode()) + _bytes_field(9, data)


def _write_node(node: Node) -> bytes:
    out = b"".join(_bytes_field(1, name.encode()) for name in node.inputs)
    out += b"".join(_bytes_field(2, name.encode()) for name in node.outputs)
    out += _bytes_field(4, node.op_type.encode())
    for name, value in node.attributes.items():
        if isinstance(value, float):
            value_field = _key(2, _FIXED32) + struct.pack("<f", value) + _int_field(20, _ATTR_FLOAT)
        else:
            value_field = _int_field(3, value) + _int_field(20, _ATTR_INT)
        attribute = _bytes_field(1, name.encode()) + value_field
        out += _bytes_field(5, attribute)
    return out


def _value_info(name: str, shape: tuple[int | str, ...]) -> bytes:
    dims = b"".join(_bytes_field(1, _bytes_field(2, d.encode()) if isinstance(d, str) else _int_field(1, d))
                    for d in shape)
    tensor_type = _int_field(1, FLOAT) + _bytes_field(2, dims)
    return _bytes_field(1, name.encode()) + _bytes_field(2, _bytes_field(1, tensor_type))


def write_model(nodes: list[Node], initializers: dict[str, np.ndarray], inputs: dict[str, tuple[int | str, ...]],
                outputs: dict[str, tuple[int | str, ...]], opset: int = 18) -> bytes:
    """A serialized ModelProto (IR version 8, default domain at `opset`): `nodes` in order,
    float32 or int64 `initializers`, and float32 graph `inputs` and `outputs` with their shapes
    (a string names a dimension left free)."""
    graph = b"".join(_bytes_field(1, _write_node(node)) for node in nodes)
    graph += _bytes_field(2, b"timbrel")
    graph += b"".join(_bytes_field(5, _write_tensor(name, array)) for name, array in initializers.items())
    graph += b"".join(_bytes_field(11, _value_info(name, shape)) for name, shape in inputs.items())
    graph += b"".join(_bytes_field(12, _value_info(name, shape)) for name, shape in outputs.items())
    opset_import = _bytes_field(1, b"") + _int_field(2, opset)
    return _int_field(1, 8) + _bytes_field(8, opset_import) + _bytes_field(7, graph)
