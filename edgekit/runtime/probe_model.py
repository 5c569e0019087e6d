"""A one-op TFLite model (float32 ADD of two [1, 4] tensors), built without TensorFlow.

Used to ask an accelerator whether it works here, without shipping a binary file.

Example:
    >>> tiny_add_model()[4:8]
    b'TFL3'
"""

from __future__ import annotations

import functools

import flatbuffers

from edgekit.formats.tflite import TFLITE_IDENTIFIER, schema


@functools.cache
def tiny_add_model() -> bytes:
    """Serialized TFLite model computing ``out = a + b`` on float32 [1, 4]."""
    s = schema()
    tensors = []
    for i, name in enumerate(("a", "b", "out")):
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, 4], s.TensorType.FLOAT32, i + 1, name
        tensors.append(t)
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.AddOptions, s.AddOptionsT()
    graph = s.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0, 1], [2], [op]
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.ADD
    code.version = 1
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [s.BufferT() for _ in range(4)]
    model.description = "edgekit probe"
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())
