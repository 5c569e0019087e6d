"""Run an edgekit bundle on a device: ``python run.py INPUT... [--top-k K] [--json] [--threads N] [--key PUB]``.

This file is copied into every Raspberry Pi and Coral bundle as ``run.py``; it needs only
ai-edge-litert (or tflite-runtime), numpy and pillow, and reads ``edgekit.json`` beside it.
It is also where ``edgekit predict`` takes its preprocessing and post-processing from, so
what a device app does and what edgekit validated are the same code.

Inputs: images (any format pillow reads: resized and converted as the manifest says),
``.npy`` arrays (one sample, or a batch), ``.csv`` files (a window model takes the last
``steps`` rows; a feature model takes each row as one sample).

``--key PUB``: refuse the bundle unless ``edgekit.sig`` is a valid Ed25519 signature of ``edgekit.json`` by
that public key (needs ``cryptography``). ``--limit NAME=N`` raises a limit on what it reads.

Example:
    $ python run.py photos/cat.jpg --top-k 3
    cat.jpg: Egyptian cat 0.69, tabby 0.12, tiger cat 0.08
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import json
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

READS_MAJOR = 1
SIGNATURE_FILE = "edgekit.sig"
EDGETPU_LIBRARY = "libedgetpu.so.1"
_INT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}
# What this app reads, bounded (edgekit.limits says what each bounds; inside edgekit this dict is that module's,
# so `edgekit --limit NAME=N` raises both). `run.py --limit NAME=N` raises one here.
LIMITS = {
    "image_pixels": 64_000_000,
    "input_values": 1 << 26,
    "csv_rows": 100_000,
    "labels_bytes": 4 << 20,
    "manifest_bytes": 1 << 20,
}


class BundleError(Exception):
    """Bad input or a bad bundle: one line for the user."""


def over(name: str, found: str) -> str:
    """The one line for an input over limit ``name``, naming the flag that raises it."""
    return f"{found}: the limit is {LIMITS[name]:,}; raise it with --limit {name}=N"


def load_manifest(folder: Path) -> dict[str, Any]:
    """Read ``edgekit.json``; refuse a newer major schema version."""
    path = folder / "edgekit.json"
    if not path.is_file():
        raise BundleError(f"{folder}: no edgekit.json (not an edgekit bundle)")
    if (size := path.stat().st_size) > LIMITS["manifest_bytes"]:
        raise BundleError(over("manifest_bytes", f"{path}: {size:,} bytes"))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise BundleError(f"{path}: nested too deeply to be an edgekit.json") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: not a JSON object")
    major = str(manifest.get("schema_version", "0")).split(".")[0]
    if not major.isdigit() or int(major) > READS_MAJOR:
        version = manifest.get("schema_version")
        raise BundleError(f"{path}: schema_version {version} is newer than this reader ({READS_MAJOR}.x): "
                          "use the run.py that came with the bundle or upgrade edgekit")  # fmt: skip
    return manifest


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def key_id(raw_public_key: bytes) -> str:
    """A public key's id: the first 16 hex digits of the sha256 of its 32 raw bytes."""
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def check_signature(folder: Path, key_path: Path | None) -> str:
    """Check ``edgekit.sig`` against the public key at ``key_path`` (PEM); what was found, in a few words.

    With a key: the bundle must be signed by it, over edgekit.json as it is (whose sha256s cover every other
    file), else BundleError. Without a key: "unsigned", or "signed by key ... (not checked: no --key)".
    """
    sig_path = folder / SIGNATURE_FILE
    if key_path is None:
        if not sig_path.is_file():
            return "unsigned"
        return "signed (not checked: give --key PUBLIC_KEY to check it)"
    if not sig_path.is_file():
        raise BundleError(f"{folder}: the bundle is not signed ({SIGNATURE_FILE} missing), and --key asks for a "
                          "signed one")  # fmt: skip
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        raise BundleError("--key needs the cryptography package: pip install cryptography") from None
    try:
        public = serialization.load_pem_public_key(Path(key_path).read_bytes())
    except OSError as exc:
        raise BundleError(f"--key {key_path}: cannot read it ({exc.strerror})") from None
    except (ValueError, TypeError):
        raise BundleError(f"--key {key_path}: not a PEM public key (give the .pub file, not the private key)") from None
    if not isinstance(public, Ed25519PublicKey):
        raise BundleError(f"--key {key_path}: a {type(public).__name__}; edgekit bundles are signed with Ed25519")
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        body = json.loads(sig_path.read_bytes()[: LIMITS["manifest_bytes"]].decode("utf-8"))
        signature = base64.b64decode(body["signature"], validate=True)
    except (ValueError, KeyError, TypeError, RecursionError):
        raise BundleError(f"{sig_path}: not an edgekit signature file") from None
    if body.get("key_id") != key_id(raw):
        raise BundleError(f"{sig_path}: signed by key {body.get('key_id')!r}, not by --key {key_path} "
                          f"({key_id(raw)})")  # fmt: skip
    try:
        public.verify(signature, (folder / "edgekit.json").read_bytes())
    except InvalidSignature:
        raise BundleError(f"{folder}: the signature does not match edgekit.json: the bundle was changed after it "
                          "was signed") from None  # fmt: skip
    return f"signed by key {key_id(raw)}: signature valid"


def inside(folder: Path, name: Any) -> Path:
    """``name`` from edgekit.json as a file of the bundle: a plain relative path ("a/b.txt": no "..", no ".",
    no absolute path, drive or backslash) that no symlink leads out of ``folder``."""
    parts = name.split("/") if isinstance(name, str) else []
    plain = bool(parts) and all(p not in ("", ".", "..") and "\\" not in p and ":" not in p for p in parts)
    if not plain:
        raise BundleError(f"edgekit.json: file name {name!r} is not a plain relative path inside the bundle")
    path = folder / PurePosixPath(name)
    if not path.resolve().is_relative_to(folder.resolve()):
        raise BundleError(f"edgekit.json: {name!r} leads outside the bundle (a symlink)")
    return path


def _positive_dims(shape: Any) -> bool:
    return isinstance(shape, list) and all(isinstance(d, int) and d >= 1 for d in shape)


def check_sizes(manifest: dict[str, Any]) -> None:
    """Refuse inputs and resizes a manifest may ask for but no edge model has (over the input_values limit), and
    outputs without a shape of positive dimensions."""
    for item in manifest["outputs"]:
        shape = item.get("shape")
        if not shape or not _positive_dims(shape):
            raise BundleError(f"edgekit.json: output {str(item.get('name'))[:80]!r} has shape {str(shape)[:80]}")
    for item in manifest["inputs"]:
        asked = [item["shape"]]
        if size := item.get("preprocessing", {}).get("size"):
            asked.append([*size, 4])
        for shape in asked:
            if not _positive_dims(shape) or int(np.prod(shape, dtype=np.float64)) > LIMITS["input_values"]:
                raise BundleError(over("input_values", f"edgekit.json: input {item.get('name')!r} asks for {shape}"))


def check_references(manifest: dict[str, Any]) -> None:
    """The manifest's cross-references hold: post-processing reads one of its outputs (with a threshold for an
    anomaly scorer); input and output indices are 0..n-1, once each."""
    names, read = [o.get("name") for o in manifest["outputs"]], manifest["postprocessing"].get("output")
    if read not in names:
        raise BundleError(f"edgekit.json: postprocessing reads output {str(read)[:80]!r}, not one of {names}")
    for role in ("boxes", "classes", "scores", "count"):  # a detector reads these outputs too
        if role in manifest["postprocessing"] and manifest["postprocessing"][role] not in names:
            raise BundleError(f"edgekit.json: postprocessing's {role} names no output of the model")
    if manifest["task"] == "anomaly_scorer" and not isinstance(
        manifest["postprocessing"].get("threshold"), int | float
    ):
        raise BundleError("edgekit.json: an anomaly_scorer's postprocessing needs a numeric threshold")
    for kind in ("inputs", "outputs"):
        if sorted(item.get("index") for item in manifest[kind]) != list(range(len(manifest[kind]))):
            raise BundleError(f"edgekit.json: the {kind}' indices are not 0 to {len(manifest[kind]) - 1}, once each")


def check_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is inside the bundle and has its sha256; the model and labels are listed."""
    check_sizes(manifest)
    check_references(manifest)
    for role, name in (("model", manifest["model"]["file"]), ("labels", manifest["postprocessing"].get("labels"))):
        if name is not None and name not in manifest["files"]:
            raise BundleError(f"edgekit.json: the {role} file {name!r} is not in its files (no sha256 covers it)")
    for name, expected in manifest["files"].items():
        path = inside(folder, name)
        if not path.is_file():
            raise BundleError(f"{path}: missing (listed in edgekit.json)")
        if sha256_file(path) != expected:
            raise BundleError(f"{path}: sha256 mismatch (the file was changed after bundling)")


def read_labels(folder: Path, manifest: dict[str, Any]) -> list[str] | None:
    """The labels file the manifest names, one label per line, or None."""
    name = manifest["postprocessing"].get("labels")
    if not name:
        return None
    path = inside(folder, name)
    if (size := path.stat().st_size) > LIMITS["labels_bytes"]:
        raise BundleError(over("labels_bytes", f"{path}: {size:,} bytes"))
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BundleError(f"{path}: labels are not UTF-8 text") from None


# -- preprocessing ---------------------------------------------------------------------------


def _quantize(values: np.ndarray, item: dict[str, Any]) -> np.ndarray:
    q = item["quantization"] or {"scale": 1.0, "zero_point": 0}
    low, high = _INT_RANGE[item["dtype"]]
    return np.clip(np.round(values / q["scale"] + q["zero_point"]), low, high).astype(item["dtype"])


def _to_model(values: np.ndarray, item: dict[str, Any]) -> np.ndarray:
    """Float values → the input's dtype (quantized with its scale / zero point when integer)."""
    if item["dtype"] in _INT_RANGE:
        return _quantize(values.astype(np.float32), item)
    return values.astype(item["dtype"])


def image_input(path: Path, item: dict[str, Any]) -> np.ndarray:
    """One image file as a batch of one, resized, converted and scaled as ``item["preprocessing"]`` says."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = LIMITS["image_pixels"]  # pillow refuses at twice this; the check below at once
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in one line
            image = Image.open(path)
        with image:
            if (pixels := image.width * image.height) > LIMITS["image_pixels"]:
                raise BundleError(over("image_pixels", f"{path}: {image.width}x{image.height} is {pixels:,} pixels"))
            return pil_input(image, item)
    except Image.DecompressionBombError as exc:
        pixels = str(exc).split("(", 1)[-1].split(" pixels", 1)[0]  # pillow: "Image size (N pixels) exceeds ..."
        raise BundleError(over("image_pixels", f"{path}: {pixels} pixels")) from None
    except BundleError:
        raise
    except Exception as exc:
        kind = "not an image pillow can read" if isinstance(exc, UnidentifiedImageError) else "a broken image"
        raise BundleError(f"{path}: {kind} ({type(exc).__name__}: {str(exc)[:80]})") from None


def pil_input(image: Any, item: dict[str, Any]) -> np.ndarray:
    """A pillow image (a file, a camera frame) as a batch of one for ``item``."""
    from PIL import Image

    pre = item["preprocessing"]
    image = image.convert(pre["color"]).resize((pre["size"][1], pre["size"][0]), Image.BILINEAR)
    pixels = np.asarray(image).reshape(*pre["size"], -1)
    if pre["feed"] == "uint8_pixels":
        return pixels.astype(np.uint8)[None]
    values = (pixels.astype(np.float32) - np.float32(pre["mean"])) / np.float32(pre["std"])
    return _to_model(values, item)[None]


def values_input(values: np.ndarray, item: dict[str, Any]) -> np.ndarray:
    """Raw values of one sample or a batch (a window of sensor rows, a feature row) as a batch for ``item``:
    standardized per channel where the preprocessing has ``mean`` / ``std``, quantized for an integer input."""
    values = np.asarray(values)
    sample = tuple(item["shape"][1:])
    if values.shape == sample:
        values = values[None]
    if tuple(values.shape[1:]) != sample:
        raise BundleError(f"shape {list(values.shape)} does not fit input {item['name']!r} {item['shape']}")
    if values.size == 0:
        raise BundleError(f"no samples (shape {list(values.shape)})")
    if values.dtype.kind not in "biuf":
        raise BundleError(f"{values.dtype} values; the model takes numbers")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise BundleError(f"{bad} NaN or infinite value(s): refused rather than guessed (clean the data first)")
    if values.dtype.kind in "iu" and values.dtype == np.dtype(item["dtype"]):
        return values
    pre = item["preprocessing"]
    if "mean" in pre:  # per-channel standardization the model expects before it
        values = (values.astype(np.float64) - np.asarray(pre["mean"])) / np.asarray(pre["std"])
    return _to_model(values.astype(np.float32), item)


def _csv_rows(path: Path) -> np.ndarray:
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if len(rows) == LIMITS["csv_rows"]:
                    raise BundleError(over("csv_rows", f"{path}: more than {len(rows):,} rows"))
                try:
                    rows.append([float(v) for v in row if v.strip()])
                except ValueError:
                    if rows:
                        raise BundleError(f"{path}: row {len(rows) + 1} is not numbers: {row[:4]}") from None
                    continue  # a header line
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BundleError(f"{path}: not a UTF-8 CSV file ({type(exc).__name__})") from None
    if not rows:
        raise BundleError(f"{path}: no numeric rows")
    if len({len(row) for row in rows}) > 1:
        raise BundleError(f"{path}: rows of different lengths ({min(map(len, rows))} to {max(map(len, rows))} values)")
    return np.asarray(rows, np.float32)


def _npy_values(path: Path) -> np.ndarray:
    """A ``.npy`` file's array, its header checked first: no object dtype, at most input_values values."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(f)
        if dtype.hasobject:
            raise ValueError("it holds Python objects")
        if (count := int(np.prod(shape, dtype=np.float64))) > LIMITS["input_values"]:
            raise BundleError(over("input_values", f"{path}: an array of {count:,} values {list(shape)}"))
        return np.load(path, allow_pickle=False)
    except BundleError:
        raise
    except Exception as exc:
        raise BundleError(f"{path}: not a numpy array file ({type(exc).__name__}: {str(exc)[:80]})") from None


def array_input(path: Path, item: dict[str, Any]) -> np.ndarray:
    """A ``.npy`` or ``.csv`` file as a batch for ``item``: a window model takes the last ``steps`` CSV rows
    (as many trailing columns as it has channels), a feature model each row."""
    if path.suffix == ".npy":
        values = _npy_values(path)
    else:
        rows = _csv_rows(path)
        sample = item["shape"][1:]
        if item["preprocessing"]["kind"] == "window":
            steps, channels = sample
            if rows.shape[0] < steps or rows.shape[1] < channels:
                raise BundleError(f"{path}: {rows.shape[0]} rows x {rows.shape[1]} columns; "
                                  f"the model takes a window of {steps} rows x {channels} columns")  # fmt: skip
            values = rows[-steps:, -channels:]
        else:
            width = int(np.prod(sample))
            if rows.shape[1] < width:
                raise BundleError(f"{path}: {rows.shape[1]} values per row; input {item['name']!r} takes {width}")
            values = rows[:, -width:].reshape(-1, *sample)
    try:
        return values_input(values, item)
    except BundleError as exc:
        raise BundleError(f"{path}: {exc}") from None


def read_input(path: Path, item: dict[str, Any]) -> np.ndarray:
    """One input file as a batch for ``item`` (image, ``.npy`` or ``.csv``)."""
    if not path.is_file():
        raise BundleError(f"{path}: no such file")
    if path.suffix.lower() in (".npy", ".csv"):
        return array_input(path, item)
    if item["preprocessing"]["kind"] != "image":
        raise BundleError(f"{path}: input {item['name']!r} takes .npy or .csv data, not {path.suffix or 'this file'}")
    return image_input(path, item)


# -- post-processing -------------------------------------------------------------------------


def dequantize(values: np.ndarray, item: dict[str, Any]) -> np.ndarray:
    """Raw output → float (scale / zero point when quantized)."""
    q = item.get("quantization")
    if q and values.dtype.kind in "iu":
        return (values.astype(np.float32) - q["zero_point"]) * np.float32(q["scale"])
    return values.astype(np.float32)


COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)  # fmt: skip


def _label(labels: list[str] | None, index: int) -> str:
    return labels[index] if labels and 0 <= index < len(labels) else str(index)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one [ymin, xmin, ymax, xmax] box with each of ``others``."""
    top, left = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
    bottom, right = np.minimum(box[2], others[:, 2]), np.minimum(box[3], others[:, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(box) + area(others) - inter, 1e-12)


def detections(outputs: dict[str, np.ndarray], post: dict[str, Any], labels: list[str] | None, n: int) -> list:
    """Sample ``n``'s detections: label, score and box ``[ymin, xmin, ymax, xmax]`` normalized to the image.

    From the TFLite detection post-processing op's outputs (``classes`` and ``count`` given: boxes already
    suppressed), or from plain box and per-class score tensors (greedy non-maximum suppression here, IoU 0.5).
    """
    boxes = outputs[post["boxes"]][n].reshape(-1, 4)
    threshold, most = float(post.get("score_threshold", 0.5)), int(post.get("max_detections", 100))
    if post.get("classes"):
        scores = outputs[post["scores"]][n].reshape(-1)
        classes = outputs[post["classes"]][n].reshape(-1).astype(np.int64)
        count = int(outputs[post["count"]].reshape(-1)[n]) if post.get("count") else len(scores)
        keep = [i for i in range(min(count, len(scores))) if scores[i] >= threshold]
    else:
        per_class = outputs[post["scores"]][n].reshape(len(boxes), -1)
        classes, scores = per_class.argmax(-1), per_class.max(-1)
        keep = []
        for i in np.argsort(-scores, kind="stable"):
            if scores[i] < threshold or len(keep) == most:
                break
            if not keep or (_iou(boxes[i], boxes[keep])[classes[keep] == classes[i]] <= 0.5).all():
                keep.append(int(i))
    return [{"label": _label(labels, int(classes[i])), "index": int(classes[i]), "score": round(float(scores[i]), 6),
             "box": [round(float(v), 6) for v in np.clip(boxes[i], 0.0, 1.0)]} for i in keep[:most]]  # fmt: skip


def keypoints(values: np.ndarray) -> list[dict[str, Any]]:
    """One pose's keypoints from ``(points, 3)`` rows of (y, x, score) normalized to the image (MoveNet's layout);
    the 17 COCO names where there are 17 points."""
    rows = values.reshape(-1, values.shape[-1])
    names = COCO_KEYPOINTS if len(rows) == len(COCO_KEYPOINTS) else [str(i) for i in range(len(rows))]
    found = []
    for name, r in zip(names, rows, strict=True):
        point = {"name": name, "x": round(float(r[1]), 6), "y": round(float(r[0]), 6)}
        found.append({**point, "score": round(float(r[2]), 6)} if len(r) > 2 else point)
    return found


def image_size(path: Path | None) -> tuple[int, int] | None:
    """(width, height) of an image file from its header, or None for data that is not an image."""
    if path is None or path.suffix.lower() in (".npy", ".csv"):
        return None
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception:
        return None


def segmentation(ids: np.ndarray, labels: list[str] | None, source: Path | None, out_dir: Path | None) -> dict:
    """Each present class's pixel share of a class-id map, and (with ``out_dir``) the map as a PNG of class ids
    at the source image's size (nearest neighbour), ``<source stem>_mask.png``."""
    values, counts = np.unique(ids, return_counts=True)
    present = [{"label": _label(labels, int(v)), "index": int(v), "share": round(float(c) / ids.size, 6)}
               for v, c in sorted(zip(values, counts, strict=True), key=lambda vc: -vc[1])]  # fmt: skip
    result: dict[str, Any] = {"classes": present, "size": [int(ids.shape[1]), int(ids.shape[0])], "mask": None}
    if out_dir is not None:
        from PIL import Image

        mode, dtype = ("L", np.uint8) if ids.max(initial=0) < 256 else ("I;16", np.uint16)
        mask = Image.fromarray(ids.astype(dtype), mode=mode)
        size = image_size(source)
        if size is not None:
            mask = mask.resize(size, Image.NEAREST)
            result["size"] = list(size)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{source.stem if source else 'input'}_mask.png"
        mask.save(path)
        result["mask"] = str(path)
    return result


def postprocess(outputs: dict[str, np.ndarray], manifest: dict[str, Any], labels: list[str] | None,
                top_k: int | None = None, source: Path | None = None,
                out_dir: Path | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Float outputs by name (one batch) → one result per sample, as the task reads them. ``source`` (the input
    file) and ``out_dir`` place a segmentation's mask PNG."""
    post = manifest["postprocessing"]
    task = manifest["task"]
    values = outputs[post["output"]]
    if task == "detector":
        return [{"detections": detections(outputs, post, labels, n)} for n in range(values.shape[0])]
    if task == "pose":
        return [{"keypoints": keypoints(values[n])} for n in range(values.shape[0])]
    if task == "segmenter":
        ids = values.argmax(-1) if post.get("form") == "scores" else values.astype(np.int64)
        return [{"segmentation": segmentation(ids[n], labels, source, out_dir)} for n in range(ids.shape[0])]
    results = []
    for row in values.reshape(values.shape[0], -1):
        if task == "classifier":
            scores = row
            if post.get("softmax") == "apply":
                exp = np.exp(row - row.max())
                scores = exp / exp.sum()
            k = min(top_k or post.get("top_k", 5), scores.size)
            best = np.argsort(-scores, kind="stable")[:k]
            results.append({"top": [{"label": _label(labels, int(i)), "index": int(i),
                                     "score": round(float(scores[i]), 6)} for i in best]})  # fmt: skip
        elif task == "anomaly_scorer":
            score = float(row[0])
            results.append({"score": round(score, 6), "threshold": post["threshold"],
                            "anomaly": bool(score > post["threshold"])})  # fmt: skip
        elif task == "binary-classifier":
            p = float(row[0])
            results.append({"probability": round(p, 6), "positive": bool(p > post.get("threshold", 0.5))})
        else:
            results.append({"values": [round(float(v), 6) for v in row]})
    return results


def describe(result: dict[str, Any]) -> str:
    """One line for a result."""
    if "top" in result:
        return ", ".join(f"{t['label']} {t['score']:.2f}" for t in result["top"])
    if "warming_up" in result:
        return f"warming up ({result['warming_up']})"
    if "anomaly" in result:
        return f"score {result['score']:.4g} ({'ANOMALY' if result['anomaly'] else 'normal'}, threshold " \
               f"{result['threshold']:.4g})"  # fmt: skip
    if "positive" in result:
        return f"p={result['probability']:.3f} ({'positive' if result['positive'] else 'negative'})"
    if "detections" in result:
        found = result["detections"]
        return ", ".join(f"{d['label']} {d['score']:.2f} at {d['box']}" for d in found) or "nothing detected"
    if "keypoints" in result:
        return ", ".join(f"{k['name']} ({k['x']:.2f}, {k['y']:.2f})" for k in result["keypoints"])
    if "segmentation" in result:
        seg = result["segmentation"]
        shares = ", ".join(f"{c['label']} {c['share']:.1%}" for c in seg["classes"][:5])
        return shares + (f"; mask {seg['mask']}" if seg["mask"] else "")
    if "outputs" in result:  # predict --raw
        return "; ".join(f"{name} {np.asarray(v).shape}" for name, v in result["outputs"].items())
    return " ".join(f"{v:.4g}" for v in result["values"])


# -- running ---------------------------------------------------------------------------------


def open_interpreter(folder: Path, manifest: dict[str, Any], threads: int | None = None) -> Any:
    """LiteRT's interpreter for the bundled model; the Edge TPU delegate for a compiled one."""
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError:
        try:
            from tflite_runtime import interpreter as litert
        except ImportError:
            raise BundleError("no TFLite runtime: pip install -r requirements.txt") from None
    delegates = None
    if manifest["model"]["edgetpu_compiled"]:
        import ctypes

        try:
            ctypes.CDLL(EDGETPU_LIBRARY)  # first: a failed load_delegate leaves a half-built Delegate behind
            delegates = [litert.load_delegate(EDGETPU_LIBRARY)]
        except (OSError, ValueError) as exc:
            raise BundleError(f"edgetpu unavailable: {exc} (install libedgetpu1-std and plug in the Coral)") from None
    interp = litert.Interpreter(model_path=str(folder / manifest["model"]["file"]), num_threads=threads,
                                experimental_delegates=delegates)  # fmt: skip
    interp.allocate_tensors()
    return interp


def run_batch(interp: Any, manifest: dict[str, Any], batch: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Invoke once per sample (inputs by the manifest's index), resetting recurrent state when it says so."""
    details_in, details_out = interp.get_input_details(), interp.get_output_details()
    collected: dict[str, list[np.ndarray]] = {o["name"]: [] for o in manifest["outputs"]}
    for n in range(batch[0].shape[0]):
        for item, values in zip(manifest["inputs"], batch, strict=True):
            interp.set_tensor(details_in[item["index"]]["index"], values[n : n + 1])
        if manifest["state"]["reset_before_each_call"]:
            interp.reset_all_variables()
        interp.invoke()
        for item in manifest["outputs"]:
            collected[item["name"]].append(interp.get_tensor(details_out[item["index"]]["index"]))
    return {item["name"]: dequantize(np.concatenate(collected[item["name"]]), item) for item in manifest["outputs"]}


# -- streaming -------------------------------------------------------------------------------

# A state output is named after its state input plus one of these (edgekit.runtime.base's, copied: run.py has no
# edgekit; a test checks they are equal).
STATE_SUFFIXES = ("_next", "_out", "_new")


def state_pairs(manifest: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(input, output) items of each state a streaming model carries: input ``S`` and output ``S_next``."""
    outputs = {o["name"]: o for o in manifest["outputs"]}
    return [(i, outputs[i["name"] + s]) for i in manifest["inputs"] for s in STATE_SUFFIXES if i["name"] + s in outputs]


def window_score(errors: Any, reduce: dict[str, Any]) -> float:
    """A streaming scorer's score of its last per-step errors (edgekit.runtime.streams', copied: a test checks
    they agree): their mean, max, or ``smoothed_max`` (mean over ``smoothing`` steps, peak per channel, mean)."""
    e = np.asarray(errors, np.float64).reshape(len(errors), -1)
    if reduce["kind"] == "mean":
        return float(e.mean())
    if reduce["kind"] == "max":
        return float(e.max())
    k = max(1, min(int(reduce.get("smoothing", 1)), len(e)))
    sums = np.cumsum(np.vstack([np.zeros((1, e.shape[1])), e]), axis=0)
    return float(((sums[k:] - sums[:-k]) / k).max(axis=0).mean())


class Stepper:
    """A streaming model fed one row (timestep) at a time, its state carried from step to step. ``invoke(feeds)``
    runs one step on model-dtype arrays in the manifest's input order and returns float outputs by name.

    ``push(row)`` gives the row's result as :func:`postprocess` reads it; a streaming anomaly scorer's score is
    its window reduction (``postprocessing.window_reduce``) over the last ``steps`` rows' errors, as its windowed
    model scores a window, with no verdict (``anomaly`` null) until that many rows have come.
    """

    def __init__(self, manifest: dict[str, Any], invoke: Any, labels: list[str] | None = None,
                 top_k: int | None = None) -> None:  # fmt: skip
        self.pairs = state_pairs(manifest)
        if not self.pairs:
            raise BundleError("--stream needs a streaming model (state inputs S with outputs S_next): convert the "
                              "sequence model with edgekit convert --streaming")  # fmt: skip
        states = {i["name"] for i, _ in self.pairs}
        steps = [item for item in manifest["inputs"] if item["name"] not in states]
        if len(steps) != 1:
            raise BundleError(f"--stream feeds one input per step; the model takes {[i['name'] for i in steps]}")
        self.manifest, self.invoke, self.labels, self.top_k = manifest, invoke, labels, top_k
        self.item, self.width = steps[0], int(np.prod(steps[0]["shape"][1:]))
        self.reduce = manifest["postprocessing"].get("window_reduce")
        self.reset()

    def reset(self) -> None:
        """Zero state, no rows seen: the next row starts a new stream."""
        self.state = {i["name"]: np.zeros(i["shape"], np.float32) for i, _ in self.pairs}
        self.errors: list[np.ndarray] = []

    def push(self, row: Any) -> dict[str, Any]:
        """One timestep in, its result out."""
        row = np.asarray(row, np.float32).reshape(-1)
        if row.size != self.width:
            raise BundleError(f"a row has {row.size} values; input {self.item['name']!r} takes {self.width} per step")
        x = values_input(row.reshape(self.item["shape"][1:]), self.item)
        inputs = self.manifest["inputs"]
        outputs = self.invoke([x if i is self.item else _to_model(self.state[i["name"]], i) for i in inputs])
        self.state = {i["name"]: outputs[o["name"]].reshape(i["shape"]) for i, o in self.pairs}
        outputs = {k: v for k, v in outputs.items() if k not in {o["name"] for _, o in self.pairs}}
        if not self.reduce:
            return postprocess(outputs, self.manifest, self.labels, self.top_k)[0]
        post, steps = self.manifest["postprocessing"], int(self.reduce["steps"])
        self.errors = [*self.errors[1 - steps :], outputs[post["output"]].reshape(-1)]
        if len(self.errors) < steps:
            return {"score": None, "threshold": post["threshold"], "anomaly": None,
                    "warming_up": f"{len(self.errors)}/{steps} rows"}  # fmt: skip
        score = np.array([[window_score(self.errors, self.reduce)]], np.float32)
        return postprocess({post["output"]: score}, self.manifest, self.labels)[0]


def stream(rows: np.ndarray, manifest: dict[str, Any], invoke: Any, labels: list[str] | None = None,
           top_k: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Each row one timestep of a streaming model, in order, from zero state: one result per row (see
    :class:`Stepper`)."""
    stepper = Stepper(manifest, invoke, labels, top_k)
    return [stepper.push(row) for row in rows]


def read_rows(path: Path) -> np.ndarray:
    """A CSV (or ``.npy``) of rows, one timestep each, for ``--stream``."""
    if not path.is_file():
        raise BundleError(f"{path}: no such file")
    rows = _npy_values(path) if path.suffix == ".npy" else _csv_rows(path)
    return np.asarray(rows, np.float32).reshape(len(rows), -1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run this edgekit bundle on images, .npy or .csv files.")
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per input")
    parser.add_argument("--key", type=Path, default=None, help="public key (PEM) the bundle must be signed by")
    parser.add_argument("--out-dir", type=Path, default=None, help="where a segmentation's mask PNGs go")
    parser.add_argument("--stream", action="store_true", help="each CSV row one timestep, the state carried")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=N",
                        help=f"raise a limit on what it reads ({', '.join(LIMITS)})")  # fmt: skip
    args = parser.parse_args(argv)
    for text in args.limit:
        name, _, value = text.partition("=")
        if name not in LIMITS or not value.isdigit():
            parser.error(f"--limit takes NAME=N with NAME one of {', '.join(LIMITS)}; got {text!r}")
        LIMITS[name] = int(value)
    folder = Path(__file__).resolve().parent
    try:
        check_signature(folder, args.key)
        manifest = load_manifest(folder)
        check_files(folder, manifest)
        labels = read_labels(folder, manifest)
        interp = open_interpreter(folder, manifest, args.threads)
        item = manifest["inputs"][0]
        report = []
        for path in args.inputs:
            if args.stream:
                invoke = lambda feeds: run_batch(interp, manifest, feeds)  # noqa: E731
                steps = stream(read_rows(path), manifest, invoke, labels, args.top_k)
                report += [{"input": str(path), "row": n, **r} for n, r in enumerate(steps)]
                continue
            outputs = run_batch(interp, manifest, [read_input(path, item)])
            results = postprocess(outputs, manifest, labels, args.top_k, path, args.out_dir)
            report += [{"input": str(path), **r} for r in results]
    except BundleError as exc:
        print(f"run.py: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for r in report:
            print(f"{Path(r['input']).name}: {describe(r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
