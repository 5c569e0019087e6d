"""``EdgekitModel.kt``: an Android (Kotlin, LiteRT ``Interpreter``) class written for one bundled model.

Every input is a parameter of ``run`` and is filled by its dtype (an image from a ``Bitmap``: resized, scaled and
quantized as ``edgekit.json`` says; token ids as ``IntArray`` / ``LongArray``; other values as ``FloatArray``,
standardized and quantized where the manifest says); every output comes back dequantized, by tensor name; and the
task's decoder reads them as ``edgekit predict`` does (top-k classes, a scorer's verdict, detections, keypoints,
a class-id mask). Runtime lane: text generation only.

Example:
    >>> "fun run(" in kotlin(manifest)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgekit.stages.bundle.app import COCO_KEYPOINTS, state_pairs

_BYTES = {"float32": 4, "int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8, "bool": 1}
_KEYWORDS = {"as", "break", "class", "continue", "do", "else", "false", "for", "fun", "if", "in", "interface", "is",
             "null", "object", "package", "return", "super", "this", "throw", "true", "try", "typealias", "val",
             "var", "when", "while", "labels", "interpreter", "k"}  # fmt: skip


def identifier(name: str, taken: set[str]) -> str:
    """A Kotlin parameter name for a tensor name (camelCase, not a keyword, unique among ``taken``).

    Example:
        >>> identifier("serving_default_image:0", set())
        'servingDefaultImage0'
    """
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w] or ["input"]
    text = words[0][0].lower() + words[0][1:] + "".join(w[0].upper() + w[1:] for w in words[1:])
    text = f"in{text[0].upper()}{text[1:]}" if text[0].isdigit() or text in _KEYWORDS else text
    while text in taken:
        text += "_"
    taken.add(text)
    return text


def values_per_sample(shape: list[int]) -> int:
    """The number of values in one sample of a tensor (its shape without the batch dimension).

    Example:
        >>> values_per_sample([1, 24, 3])
        72
    """
    total = 1
    for d in shape[1:]:
        total *= d
    return total


def _float(value: float) -> str:
    return f"{float(value)!r}f".replace("inf", "Float.POSITIVE_INFINITY")


def _store(item: dict[str, Any], value: str) -> str:
    """The statement writing one float model-space ``value`` into ``buf`` in the input's dtype."""
    dtype, q = item["dtype"], item["quantization"] or {"scale": 1.0, "zero_point": 0}
    if dtype in ("int8", "uint8"):
        low, high = (-128, 127) if dtype == "int8" else (0, 255)
        return (f"buf.put(Math.round(({value}) / {_float(q['scale'])} + {q['zero_point']}).coerceIn({low}, {high})"
                ".toByte())")  # fmt: skip
    if dtype == "int16":
        return f"buf.putShort(Math.round({value}).toShort())"
    return f"buf.putFloat({value})"


def _fill(item: dict[str, Any], param: str) -> tuple[str, str]:
    """The parameter's Kotlin type and the body filling a direct buffer for one input."""
    pre, count = item["preprocessing"], values_per_sample(item["shape"])
    alloc = (
        f"val buf = ByteBuffer.allocateDirect({count * _BYTES.get(item['dtype'], 4)}).order(ByteOrder.nativeOrder())"
    )
    if pre["kind"] == "image":
        h, w = pre["size"]
        channels = "listOf((0.299f * r + 0.587f * g + 0.114f * b))" if pre["color"] != "RGB" else "listOf(r, g, b)"
        raw = pre["feed"] == "uint8_pixels"  # the bytes as they are (Coral's convention)
        loop = (f"for (v in {channels}) buf.put(v.toInt().toByte())" if raw
                else f"for ((c, v) in {channels}.withIndex()) {_store(item, '(v - mean[c]) / std[c]')}")  # fmt: skip
        norm = (
            ""
            if raw
            else f"""
        val mean = floatArrayOf({", ".join(_float(m) for m in pre["mean"])})
        val std = floatArrayOf({", ".join(_float(s) for s in pre["std"])})"""
        )
        body = f"""        {alloc}
        val scaled = Bitmap.createScaledBitmap({param}, {w}, {h}, true)  // bilinear, as edgekit.json says
        val pixels = IntArray({w * h})
        scaled.getPixels(pixels, 0, {w}, 0, 0, {w}, {h}){norm}
        for (p in pixels) {{
            val r = (p shr 16 and 0xFF).toFloat(); val g = (p shr 8 and 0xFF).toFloat(); val b = (p and 0xFF).toFloat()
            {loop}
        }}"""
        return "Bitmap", body
    if item["dtype"] in ("int32", "int64"):
        kind, put = ("IntArray", "buf.putInt(v)") if item["dtype"] == "int32" else ("LongArray", "buf.putLong(v)")
        body = f"""        require({param}.size == {count}) {{ "input {item["name"]}: expected {count} ids" }}
        {alloc}
        for (v in {param}) {put}"""
        return kind, body
    scaled = "(v - mean[i % mean.size]) / std[i % std.size]" if "mean" in pre else "v"
    norm = (f"""
        val mean = floatArrayOf({", ".join(_float(m) for m in pre["mean"])})
        val std = floatArrayOf({", ".join(_float(s) for s in pre["std"])})"""
            if "mean" in pre else "")  # fmt: skip
    body = f"""        require({param}.size == {count}) {{ "input {item["name"]}: expected {count} values" }}
        {alloc}{norm}
        {f"for ((i, v) in {param}.withIndex())" if "mean" in pre else f"for (v in {param})"} {_store(item, scaled)}"""
    return "FloatArray", body


def _read(item: dict[str, Any]) -> str:
    """A Kotlin expression reading one output element from ``buf`` as a dequantized float."""
    q = item.get("quantization")
    raw = {"float32": "buf.getFloat()", "int8": "buf.get().toFloat()", "uint8": "(buf.get().toInt() and 0xFF).toFloat()",
           "int16": "buf.getShort().toFloat()", "int32": "buf.getInt().toFloat()", "int64": "buf.getLong().toFloat()",
           "bool": "buf.get().toFloat()"}.get(item["dtype"], "buf.getFloat()")  # fmt: skip
    if q and item["dtype"] in ("int8", "uint8", "int16"):
        return f"({raw} - {q['zero_point']}f) * {_float(q['scale'])}"
    return raw


def _decoder(manifest: dict[str, Any], call: str, params: str) -> str:
    """The task's decoding functions, reading ``run``'s outputs as ``predict`` does."""
    task, post = manifest["task"], manifest["postprocessing"]
    label = "labels.getOrElse(it) { it.toString() }" if post.get("labels") else "it.toString()"
    if task == "classifier":
        softmax = ("        val max = raw.max() ?: 0f\n        val exp = raw.map { Math.exp((it - max).toDouble()).toFloat() }\n"
                   "        val scores = exp.map { it / exp.sum() }\n" if post.get("softmax") == "apply" else
                   "        val scores = raw.toList()\n")  # fmt: skip
        return f"""
    /** The top-k classes as (label, probability){", softmax applied to the model's logits" if post.get("softmax") == "apply" else ""}. */
    fun classify({params}, k: Int = {post.get("top_k", 5)}): List<Pair<String, Float>> {{
        val raw = {call}.getValue("{post["output"]}")
{softmax}        return scores.indices.sortedByDescending {{ scores[it] }}.take(k).map {{ {label} to scores[it] }}
    }}
"""
    if task == "anomaly_scorer" and post.get("window_reduce"):  # a streaming scorer: scoreStep(), after step()
        return f"""
    fun isAnomaly(score: Float): Boolean = score > {_float(post["threshold"])}
"""
    if task == "anomaly_scorer":
        return f"""
    /** The anomaly score; edgekit.json: {post["anomaly_if"]}. */
    fun score({params}): Float = {call}.getValue("{post["output"]}")[0]

    fun isAnomaly(score: Float): Boolean = score > {_float(post["threshold"])}
"""
    if task == "binary-classifier":
        return f"""
    fun probability({params}): Float = {call}.getValue("{post["output"]}")[0]
"""
    if task == "detector":
        if post.get("classes"):
            pick = f"""        val boxes = out.getValue("{post["boxes"]}"); val classes = out.getValue("{post["classes"]}")
        val scores = out.getValue("{post["scores"]}")
        val count = {f'minOf(out.getValue("{post["count"]}")[0].toInt(), scores.size)' if post.get("count") else "scores.size"}
        return (0 until count).filter {{ scores[it] >= minScore }}.map {{
            val c = classes[it].toInt()
            Detection(labels.getOrElse(c) {{ c.toString() }}, c, scores[it], boxes.copyOfRange(4 * it, 4 * it + 4))
        }}"""
        else:
            pick = f"""        val boxes = out.getValue("{post["boxes"]}"); val perClass = out.getValue("{post["scores"]}")
        val n = boxes.size / 4; val classes = perClass.size / n
        val found = (0 until n).map {{ i ->
            val c = (0 until classes).maxBy {{ perClass[i * classes + it] }} ?: 0
            Detection(labels.getOrElse(c) {{ c.toString() }}, c, perClass[i * classes + c], boxes.copyOfRange(4 * i, 4 * i + 4))
        }}.filter {{ it.score >= minScore }}.sortedByDescending {{ it.score }}
        val kept = ArrayList<Detection>()
        for (d in found) if (kept.none {{ it.index == d.index && iou(it.box, d.box) > 0.5f }}) kept.add(d)
        return kept"""
        labels = "" if post.get("labels") else "    private val labels = emptyList<String>()\n"
        return f"""
{labels}    /** One detection: its label, class index, score and box [ymin, xmin, ymax, xmax] normalized to the image. */
    class Detection(val label: String, val index: Int, val score: Float, val box: FloatArray)

    private fun iou(a: FloatArray, b: FloatArray): Float {{
        val h = maxOf(0f, minOf(a[2], b[2]) - maxOf(a[0], b[0])); val w = maxOf(0f, minOf(a[3], b[3]) - maxOf(a[1], b[1]))
        val union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - h * w
        return if (union > 0f) h * w / union else 0f
    }}

    fun detect({params}, minScore: Float = {_float(post.get("score_threshold", 0.5))}): List<Detection> {{
        val out = {call}
{pick}
    }}
"""
    if task == "pose":
        names = ", ".join(f'"{n}"' for n in COCO_KEYPOINTS)
        return f"""
    /** One keypoint: x and y normalized to the image, and its score. */
    class Keypoint(val name: String, val x: Float, val y: Float, val score: Float)

    private val keypointNames = listOf({names})

    fun keypoints({params}): List<Keypoint> {{
        val v = {call}.getValue("{post["output"]}")  // rows of (y, x, score)
        return (0 until v.size / 3).map {{
            Keypoint(if (v.size / 3 == keypointNames.size) keypointNames[it] else it.toString(), v[3 * it + 1], v[3 * it], v[3 * it + 2])
        }}
    }}
"""
    if task == "segmenter":
        out = next(o for o in manifest["outputs"] if o["name"] == post["output"])
        if post.get("form") == "scores":
            classes = out["shape"][-1]
            ids = (f"        return IntArray(v.size / {classes}) {{ p -> (0 until {classes}).maxBy {{ v[p * {classes} + it] }} "
                   "?: 0 }")  # fmt: skip
        else:
            ids = "        return IntArray(v.size) { v[it].toInt() }"
        return f"""
    /** The class id of each pixel of the model's {out["shape"][1]}x{out["shape"][2]} map, row by row. */
    fun segment({params}): IntArray {{
        val v = {call}.getValue("{post["output"]}")
{ids}
    }}
"""
    return ""


def _streaming(manifest: dict[str, Any], inputs: list[tuple[dict[str, Any], str]]) -> str:
    """``step`` / ``reset`` of a streaming model: its state kept in the class between calls, fed back each step."""
    pairs = state_pairs(manifest)
    if not pairs:
        return ""
    states = {i["name"]: o["name"] for i, o in pairs}
    params = [(item, p) for item, p in inputs if item["name"] not in states]
    signature = ", ".join(f"{p}: {_fill(item, p)[0]}" for item, p in params)
    args = ", ".join(f'state.getOrElse("{item["name"]}") {{ FloatArray({values_per_sample(item["shape"])}) }}'
                     if item["name"] in states else p for item, p in inputs)  # fmt: skip
    keep = "\n".join(f'        state["{i}"] = out.getValue("{o}")' for i, o in states.items())
    dropped = ", ".join(f'"{o}"' for o in states.values())
    reduce = manifest["postprocessing"].get("window_reduce")
    return f"""
    /** Streaming: the recurrent state, kept between step() calls, fed back at each step; reset() starts a stream. */
    private val state = HashMap<String, FloatArray>()

    fun reset() {{ state.clear(){"; errors.clear()" if reduce else ""} }}
{_window_score(manifest, signature, ", ".join(p for _, p in params)) if reduce else ""}
    /** One timestep in; that step's outputs out (the state outputs are kept for the next step). */
    fun step({signature}): Map<String, FloatArray> {{
        val out = run({args})
{keep}
        return out.filterKeys {{ it !in setOf({dropped}) }}
    }}
"""


def _window_score(manifest: dict[str, Any], signature: str, args: str) -> str:
    """``scoreStep``: a streaming scorer's anomaly score after one more row, its window reduction of the last
    ``steps`` rows' errors (``postprocessing.window_reduce``, as ``run.py`` and edgekit compute it)."""
    post = manifest["postprocessing"]
    reduce, steps = post["window_reduce"], int(post["window_reduce"]["steps"])
    k = max(1, int(reduce.get("smoothing", 1)))
    body = {
        "mean": """        var total = 0.0
        for (row in errors) for (v in row) total += v
        return (total / (errors.size * channels)).toFloat()""",
        "max": """        var peak = Float.NEGATIVE_INFINITY
        for (row in errors) for (v in row) peak = maxOf(peak, v)
        return peak""",
        "smoothed_max": f"""        var total = 0.0
        for (c in 0 until channels) {{
            var peak = Double.NEGATIVE_INFINITY
            for (start in 0..errors.size - {k}) {{
                var sum = 0.0
                for (t in start until start + {k}) sum += errors[t][c]
                peak = maxOf(peak, sum / {k})
            }}
            total += peak
        }}
        return (total / channels).toFloat()""",
    }[reduce["kind"]]
    return f"""
    private val errors = ArrayList<FloatArray>()

    /** The anomaly score after one more row: the {reduce["kind"]} of the last {steps} rows' errors, as the windowed
     *  model scores a window; null until {steps} rows have come. isAnomaly() gives the verdict. */
    fun scoreStep({signature}): Float? {{
        errors.add(step({args}).getValue("{post["output"]}"))
        if (errors.size > {steps}) errors.removeAt(0)
        if (errors.size < {steps}) return null
        val channels = errors[0].size
{body}
    }}
"""


def kotlin(manifest: dict[str, Any]) -> str:
    """The Kotlin class for the bundled model (see the module docstring).

    Example:
        >>> "getOutputIndex" in kotlin(manifest)  # doctest: +SKIP
        True
    """
    model = Path(manifest["model"]["file"]).name
    taken: set[str] = set()
    inputs = [(item, identifier(item["name"], taken)) for item in manifest["inputs"]]
    fills, params = [], []
    for item, param in inputs:
        kind, body = _fill(item, param)
        params.append(f"{param}: {kind}")
        pre = item["preprocessing"]
        what = (f"{pre['size'][0]}x{pre['size'][1]} {pre['color']} image" if pre["kind"] == "image"
                else f"{values_per_sample(item['shape'])} values")  # fmt: skip
        fills.append(f"""    /** Input "{item["name"]}": {item["dtype"]} {item["shape"]}, a {what}. */
    private fun fill{param[0].upper()}{param[1:]}({param}: {kind}): ByteBuffer {{
{body}
        buf.rewind()
        return buf
    }}
""")
    feeds = "\n".join(f'        inputs[interpreter.getInputIndex("{item["name"]}")] = fill{p[0].upper()}{p[1:]}({p})'
                      for item, p in inputs)  # fmt: skip
    outs = "\n".join(
        f"        val out{i} = ByteBuffer.allocateDirect({values_per_sample(o['shape']) * _BYTES.get(o['dtype'], 4)})"
        f'.order(ByteOrder.nativeOrder())\n        outputs[interpreter.getOutputIndex("{o["name"]}")] = out{i}'
        for i, o in enumerate(manifest["outputs"])
    )
    reads = ",\n".join(
        f'            "{o["name"]}" to out{i}.let {{ buf -> buf.rewind(); FloatArray({values_per_sample(o["shape"])}) {{ {_read(o)} }} }}'
        for i, o in enumerate(manifest["outputs"])
    )
    reset = ("        interpreter.resetVariableTensors()  // recurrent state: each call starts from zero, as validated\n"
             if manifest["state"]["reset_before_each_call"] else "")  # fmt: skip
    labels = ('    private val labels: List<String> = FileUtil.loadLabels(context, "labels.txt")\n'
              if manifest["postprocessing"].get("labels") else "")  # fmt: skip
    signature = ", ".join(params)
    call = f"run({', '.join(p for _, p in inputs)})"
    return f"""// Generated by {manifest["created_by"]} for {model} ({manifest["task"]}): from edgekit.json.
package org.edgekit.bundle

import android.content.Context
import android.graphics.Bitmap
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.support.common.FileUtil
import java.nio.ByteBuffer
import java.nio.ByteOrder

class EdgekitModel(context: Context) {{
    private val interpreter = Interpreter(
        FileUtil.loadMappedFile(context, "{model}"), Interpreter.Options().setNumThreads(4)
    )
{labels}
{"".join(fills)}
    /** Runs the model on every input; each output, dequantized to float, by tensor name. */
    fun run({signature}): Map<String, FloatArray> {{
        val inputs = arrayOfNulls<Any>({len(inputs)})
{feeds}
        val outputs = HashMap<Int, Any>()
{outs}
{reset}        interpreter.runForMultipleInputsOutputs(inputs.requireNoNulls(), outputs)
        return mapOf(
{reads}
        )
    }}
{_decoder(manifest, call, signature)}{_streaming(manifest, inputs)}}}
"""
