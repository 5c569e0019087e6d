"""The platform files of a bundle: ``run.py`` for the Pi and Coral, Kotlin and Swift snippets for apps.

The snippets are written for the bundled model: its file name, its input and output tensor
names and shapes, its preprocessing (size, mean / std, uint8 pixels or quantized values) and
whether its recurrent state must be reset — all from ``edgekit.json``, so a test can check
them against the bundle they ship with.

Example:
    >>> sorted(platform_files("rpi", manifest))  # doctest: +SKIP
    ['README.md', 'requirements.txt', 'run.py']
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

RUNTIME_PACKAGES = ("ai-edge-litert", "numpy", "pillow")


def pinned(package: str) -> str:
    """``package==version`` as installed here (the bare name when it is not)."""
    try:
        return f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return package


def runtime_requirements() -> list[str]:
    """A Pi / Coral bundle's ``requirements.txt``: this machine's versions, but the ai-edge-litert that runs on a
    Pi's aarch64 Python (``edgekit.runtime.pi.PI_LITERT``; ``verify --target pi`` checks it installs and runs).

    Example:
        >>> runtime_requirements()[1]
        'ai-edge-litert==1.4.0; platform_machine == "aarch64"'
    """
    from edgekit.runtime.pi import PI_LITERT

    litert = pinned("ai-edge-litert")
    return [f'{litert}; platform_machine != "aarch64"', f'ai-edge-litert=={PI_LITERT}; platform_machine == "aarch64"',
            *(pinned(p) for p in RUNTIME_PACKAGES if p != "ai-edge-litert")]  # fmt: skip


def runtime_notes(platform: str, compiled: bool) -> dict[str, Any]:
    """What the device needs to run the bundle (recorded in ``edgekit.json``).

    Example:
        >>> runtime_notes("coral", True)["delegate"]
        'libedgetpu.so.1'
    """
    notes: dict[str, Any] = {
        "rpi": {"interpreter": "ai_edge_litert.interpreter.Interpreter", "threads": 4},
        "coral": {"interpreter": "ai_edge_litert.interpreter.Interpreter", "threads": 4},
        "android": {"interpreter": "org.tensorflow.lite.Interpreter (LiteRT)", "threads": 4},
        "ios": {"interpreter": "TensorFlowLiteSwift Interpreter", "threads": 2},
    }[platform]
    if platform in ("rpi", "coral"):
        notes["python_packages"] = runtime_requirements()
    if compiled:
        notes["delegate"] = "libedgetpu.so.1"
        notes["system_packages"] = ["libedgetpu1-std (Coral's apt repository)"]
    return notes


def platform_files(platform: str, manifest: dict[str, Any]) -> dict[str, bytes]:
    """File name → content of the platform-specific files.

    Example:
        >>> "EdgekitModel.kt" in platform_files("android", manifest)  # doctest: +SKIP
        True
    """
    if platform in ("rpi", "coral"):
        app = (Path(__file__).with_name("app.py")).read_bytes()
        requirements = "\n".join(manifest["runtime"]["python_packages"]) + "\n"
        return {"run.py": app, "requirements.txt": requirements.encode(), "README.md": _readme_pi(manifest).encode()}
    if platform == "android":
        return {"EdgekitModel.kt": kotlin(manifest).encode(), "README.md": _readme_app(manifest, "Android").encode()}
    return {"EdgekitModel.swift": swift(manifest).encode(), "README.md": _readme_app(manifest, "iOS").encode()}


def _readme_pi(manifest: dict[str, Any]) -> str:
    compiled = manifest["model"]["edgetpu_compiled"]
    tpu = ("\nThe model is compiled for the Edge TPU: install `libedgetpu1-std` from Coral's apt repository and "
           "plug the Coral in; `run.py` loads `libedgetpu.so.1` as a delegate.\n") if compiled else ""  # fmt: skip
    return f"""# {manifest["model"]["file"]} ({manifest["task"]}) for {manifest["platform"]}

```bash
python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
.venv/bin/python run.py INPUT...        # images, .npy or .csv; --json for machine-readable output
```
{tpu}
Chosen because: {manifest["model"]["chosen_because"]}.
Everything `run.py` does (resize, scaling, labels, thresholds, state resets) is in `edgekit.json`.
"""


def _readme_app(manifest: dict[str, Any], os_name: str) -> str:
    snippet = "EdgekitModel.kt" if os_name == "Android" else "EdgekitModel.swift"
    where = "app/src/main/assets/" if os_name == "Android" else "the app target (Copy Bundle Resources)"
    shipped = [manifest["model"]["file"], manifest["postprocessing"].get("labels")]
    files = ", ".join(f"`{Path(n).name}`" for n in shipped if n)
    return f"""# {manifest["model"]["file"]} ({manifest["task"]}) for {os_name}

Copy {files} and `edgekit.json` into {where}, and `{snippet}` into your sources.
`{snippet}` does the preprocessing `edgekit.json` describes, maps outputs by tensor name
and {"resets the recurrent state before each call" if manifest["state"]["reset_before_each_call"] else "needs no state handling (the model is stateless)"}.

Chosen because: {manifest["model"]["chosen_because"]}.
"""


# -- shared snippet facts --------------------------------------------------------------------


def _facts(manifest: dict[str, Any]) -> dict[str, Any]:
    item, out = manifest["inputs"][0], next(o for o in manifest["outputs"]
                                             if o["name"] == manifest["postprocessing"]["output"])  # fmt: skip
    pre = item["preprocessing"]
    q = item["quantization"] or {"scale": 1.0, "zero_point": 0}
    oq = out["quantization"] or {"scale": 1.0, "zero_point": 0}
    count = 1
    for d in item["shape"][1:]:
        count *= d
    out_count = 1
    for d in out["shape"][1:]:
        out_count *= d
    return {
        "item": item, "pre": pre, "out": out, "q": q, "oq": oq, "count": count, "out_count": out_count,
        "bytes": {"float32": 4, "int8": 1, "uint8": 1, "int32": 4, "int64": 8, "int16": 2}.get(item["dtype"], 4),
        "out_bytes": {"float32": 4, "int8": 1, "uint8": 1, "int32": 4, "int64": 8, "int16": 2}.get(out["dtype"], 4),
        "model": Path(manifest["model"]["file"]).name,
        "reset": manifest["state"]["reset_before_each_call"],
        "labels": manifest["postprocessing"].get("labels"),
        "softmax": manifest["postprocessing"].get("softmax") == "apply",
    }  # fmt: skip


def _kotlin_put(facts: dict[str, Any], value: str, channel: str) -> str:
    """Kotlin statement(s) writing one float ``value`` of ``channel`` into ``input`` in the model's dtype."""
    pre, item, q = facts["pre"], facts["item"], facts["q"]
    if pre.get("feed") == "uint8_pixels":
        return f"input.put({value}.toInt().toByte())"
    if "mean" in pre:  # images; standardized features and windows
        value = f"(({value}) - mean[{channel}]) / std[{channel}]"
    if item["dtype"] in ("int8", "uint8"):
        low, high = (-128, 127) if item["dtype"] == "int8" else (0, 255)
        return (f"input.put(Math.round(({value}) / {q['scale']}f + {q['zero_point']}).coerceIn({low}, {high})"
                ".toByte())")  # fmt: skip
    return f"input.putFloat({value})"


def kotlin(manifest: dict[str, Any]) -> str:
    """An Android (Kotlin, LiteRT ``Interpreter``) snippet for the bundled model.

    Example:
        >>> "getOutputIndex" in kotlin(manifest)  # doctest: +SKIP
        True
    """
    f = _facts(manifest)
    pre, item, out = f["pre"], f["item"], f["out"]
    if pre["kind"] == "image":
        h, w = pre["size"]
        channels = 3 if pre["color"] == "RGB" else 1
        pixel = ("val r = (p shr 16 and 0xFF).toFloat(); val g = (p shr 8 and 0xFF).toFloat(); "
                 "val b = (p and 0xFF).toFloat()")  # fmt: skip
        puts = ("; ".join(_kotlin_put(f, c, str(i)) for i, c in enumerate("rgb")) if channels == 3
                else _kotlin_put(f, "(0.299f * r + 0.587f * g + 0.114f * b)", "0"))  # fmt: skip
        signature = "fun run(bitmap: Bitmap): FloatArray"
        fill = f"""        val scaled = Bitmap.createScaledBitmap(bitmap, {w}, {h}, true)  // bilinear, as edgekit.json says
        val pixels = IntArray({w * h})
        scaled.getPixels(pixels, 0, {w}, 0, 0, {w}, {h})
        for (p in pixels) {{ {pixel}; {puts} }}"""
        norm = (f"    private val mean = floatArrayOf({', '.join(f'{m}f' for m in pre['mean'])})\n"
                f"    private val std = floatArrayOf({', '.join(f'{s}f' for s in pre['std'])})\n")  # fmt: skip
    else:
        # the comment goes above: after the signature it would swallow the function's opening brace
        signature = (f"/** {f['count']} values, shape {item['shape'][1:]}. */\n"
                     "    fun run(values: FloatArray): FloatArray")  # fmt: skip
        fill = f"""        require(values.size == {f["count"]}) {{ "expected {f["count"]} values" }}
        for ((i, v) in values.withIndex()) {_kotlin_put(f, "v", "i % mean.size")}"""
        norm = (f"    private val mean = floatArrayOf({', '.join(f'{m}f' for m in pre['mean'])})\n"
                f"    private val std = floatArrayOf({', '.join(f'{s}f' for s in pre['std'])})\n"
                if "mean" in pre else "")  # fmt: skip
    read = {"float32": "output.getFloat()", "uint8": "(output.get().toInt() and 0xFF).toFloat()",
            "int8": "output.get().toFloat()"}.get(out["dtype"], "output.getFloat()")  # fmt: skip
    dequant = f"({read} - {f['oq']['zero_point']}f) * {f['oq']['scale']}f" if out["quantization"] else read
    labels = ('    private val labels: List<String> = FileUtil.loadLabels(context, "labels.txt")\n'
              if f["labels"] else "")  # fmt: skip
    softmax = ("        val max = scores.max(); val exp = scores.map { Math.exp((it - max).toDouble()).toFloat() }\n"
               "        return exp.map { it / exp.sum() }.toFloatArray()\n" if f["softmax"] else
               "        return scores\n")  # fmt: skip
    top = (
        f"""
    /** The top-k (label, score) pairs. */
    fun classify(bitmap: Bitmap, k: Int = {manifest["postprocessing"].get("top_k", 5)}): List<Pair<String, Float>> {{
        val scores = run(bitmap)
        return scores.indices.sortedByDescending {{ scores[it] }}.take(k).map {{ labels[it] to scores[it] }}
    }}
"""
        if manifest["task"] == "classifier" and pre["kind"] == "image"
        else ""
    )
    threshold = (f"\n    /** edgekit.json: {manifest['postprocessing']['anomaly_if']}. */\n"
                 f"    fun isAnomaly(score: Float): Boolean = score > {manifest['postprocessing']['threshold']}f\n"
                 if manifest["task"] == "anomaly_scorer" else "")  # fmt: skip
    reset = "        interpreter.resetVariableTensors()  // recurrent state: start each call from zero, as validated\n"
    return f"""// Generated by {manifest["created_by"]} for {f["model"]} ({manifest["task"]}): from edgekit.json.
package org.edgekit.bundle

import android.content.Context
import android.graphics.Bitmap
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.support.common.FileUtil
import java.nio.ByteBuffer
import java.nio.ByteOrder

class EdgekitModel(context: Context) {{
    private val interpreter = Interpreter(
        FileUtil.loadMappedFile(context, "{f["model"]}"), Interpreter.Options().setNumThreads(4)
    )
    private val inputIndex = interpreter.getInputIndex("{item["name"]}")    // {item["dtype"]} {item["shape"]}
    private val outputIndex = interpreter.getOutputIndex("{out["name"]}")  // {out["dtype"]} {out["shape"]}
{labels}{norm}
    {signature} {{
        val input = ByteBuffer.allocateDirect({f["count"] * f["bytes"]}).order(ByteOrder.nativeOrder())
{fill}
        input.rewind()
        val output = ByteBuffer.allocateDirect({f["out_count"] * f["out_bytes"]}).order(ByteOrder.nativeOrder())
{reset if f["reset"] else ""}        interpreter.runForMultipleInputsOutputs(arrayOf<Any>(input), mapOf(outputIndex to output))
        output.rewind()
        val scores = FloatArray({f["out_count"]}) {{ {dequant} }}
{softmax}    }}
{top}{threshold}}}
"""


def swift(manifest: dict[str, Any]) -> str:
    """An iOS (Swift, TensorFlowLiteSwift ``Interpreter``) snippet for the bundled model.

    Example:
        >>> "copy(data, toInputAt:" in swift(manifest)  # doctest: +SKIP
        True
    """
    f = _facts(manifest)
    pre, item, out, q = f["pre"], f["item"], f["out"], f["q"]
    if pre.get("feed") == "uint8_pixels":
        convert = "let data = Data(values.map { UInt8(clamping: Int($0.rounded())) })"
    elif item["dtype"] in ("int8", "uint8"):
        expr = "(v - mean[i % mean.count]) / std[i % std.count]" if "mean" in pre else "v"
        to_byte = "UInt8(bitPattern: Int8(clamping: q))" if item["dtype"] == "int8" else "UInt8(clamping: q)"
        convert = (f"let data = Data(values.enumerated().map {{ i, v -> UInt8 in\n"
                   f"            let q = Int((({expr}) / {q['scale']} + {q['zero_point']}).rounded())\n"
                   f"            return {to_byte}\n"
                   "        })")  # fmt: skip
    else:
        expr = "(v - mean[i % mean.count]) / std[i % std.count]" if "mean" in pre else "v"
        convert = (f"var floats = values.enumerated().map {{ i, v -> Float32 in {expr} }}\n"
                   "        let data = Data(bytes: &floats, count: floats.count * MemoryLayout<Float32>.stride)")  # fmt: skip
    norm = (f"    private let mean: [Float] = [{', '.join(str(m) for m in pre.get('mean', [0.0]))}]\n"
            f"    private let std: [Float] = [{', '.join(str(s) for s in pre.get('std', [1.0]))}]\n")  # fmt: skip
    what = (f"{pre['size'][0]}x{pre['size'][1]} {pre['color']} pixels (0-255, row-major, resized bilinearly first)"
            if pre["kind"] == "image" else f"{f['count']} values, shape {item['shape'][1:]}")  # fmt: skip
    dequant = f"(Float(v) - {f['oq']['zero_point']}) * {f['oq']['scale']}" if out["quantization"] else "Float(v)"
    element = {"float32": "Float32", "uint8": "UInt8", "int8": "Int8"}.get(out["dtype"], "Float32")
    fresh = ("        // Recurrent state: a fresh interpreter per independent call starts from zero state, as validated.\n"
             "        interpreter = try EdgekitModel.makeInterpreter()\n") if f["reset"] else ""  # fmt: skip
    return f"""// Generated by {manifest["created_by"]} for {f["model"]} ({manifest["task"]}): from edgekit.json.
import Foundation
import TensorFlowLite

final class EdgekitModel {{
    private var interpreter: Interpreter
{norm}
    init() throws {{ interpreter = try EdgekitModel.makeInterpreter() }}

    private static func makeInterpreter() throws -> Interpreter {{
        let path = Bundle.main.path(forResource: "{Path(f["model"]).stem}", ofType: "tflite")!
        var options = Interpreter.Options()
        options.threadCount = 2
        let interpreter = try Interpreter(modelPath: path, options: options)
        try interpreter.allocateTensors()
        return interpreter
    }}

    private func index(of name: String, count: Int, tensor: (Int) throws -> Tensor) throws -> Int {{
        for i in 0..<count {{ if try tensor(i).name == name {{ return i }} }}
        fatalError("no tensor named \\(name) in {f["model"]}")
    }}

    /// values: {what}.
    func run(_ values: [Float]) throws -> [Float] {{
        precondition(values.count == {f["count"]})
{fresh}        {convert}
        let inputIndex = try index(of: "{item["name"]}", count: interpreter.inputTensorCount) {{ try interpreter.input(at: $0) }}
        try interpreter.copy(data, toInputAt: inputIndex)
        try interpreter.invoke()
        let outputIndex = try index(of: "{out["name"]}", count: interpreter.outputTensorCount) {{ try interpreter.output(at: $0) }}
        let output = try interpreter.output(at: outputIndex)  // {out["dtype"]} {out["shape"]}
        let raw = output.data.withUnsafeBytes {{ Array($0.bindMemory(to: {element}.self)) }}
        return raw.map {{ v in {dequant} }}
    }}
}}
"""
