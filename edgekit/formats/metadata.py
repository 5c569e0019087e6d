"""Carry the bundle manifest inside the ``.tflite`` file, so the model alone describes itself.

The TFLite schema has a ``metadata`` list of (name, buffer) entries that interpreters ignore;
edgekit adds one named ``edgekit`` holding the manifest as UTF-8 JSON (without ``files``: a file
cannot hold its own hash). ``edgekit inspect`` shows it.

Example:
    >>> blob = embed_metadata(open("m.tflite", "rb").read(), {"task": "classifier"})  # doctest: +SKIP
    >>> read_metadata(parse_tflite(blob))["task"]  # doctest: +SKIP
    'classifier'
"""

from __future__ import annotations

import json
from typing import Any

from edgekit.errors import ModelFormatError
from edgekit.formats.tflite import TFLITE_IDENTIFIER, TFLiteModel, schema

METADATA_NAME = "edgekit"


def embed_metadata(blob: bytes, manifest: dict[str, Any]) -> bytes:
    """Return ``blob`` with ``manifest`` stored as metadata entry ``edgekit`` (replacing an older one).

    Operators, tensors, buffers and custom options (an Edge TPU executable) are copied unchanged.

    Example:
        >>> embed_metadata(b"nope", {})
        Traceback (most recent call last):
        ...
        edgekit.errors.ModelFormatError: not a TFLite model: cannot embed metadata
    """
    import flatbuffers

    if len(blob) < 8 or blob[4:8] != TFLITE_IDENTIFIER:
        raise ModelFormatError("not a TFLite model: cannot embed metadata")
    s = schema()
    model = s.ModelT.InitFromPackedBuf(blob, 0)
    payload = json.dumps({k: v for k, v in manifest.items() if k != "files"}, sort_keys=True).encode()
    buffer = s.BufferT()
    buffer.data = list(payload)
    model.buffers = [*(model.buffers or []), buffer]
    entry = s.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(blob) + len(payload) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def read_metadata(model: TFLiteModel) -> dict[str, Any] | None:
    """The ``edgekit`` metadata entry of a parsed model, or None.

    Example:
        >>> read_metadata(read_tflite("../shared/coral/mobilenet_v1_0.25_128_quant.tflite")) is None  # doctest: +SKIP
        True
    """
    data = model.metadata.get(METADATA_NAME)
    if data is None:
        return None
    try:
        return json.loads(data.rstrip(b"\0").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFormatError(f"{model.path}: its edgekit metadata is not JSON") from None
