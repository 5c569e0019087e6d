"""``EdgekitModel.swift``: an iOS (Swift, TensorFlowLiteSwift ``Interpreter``) class written for one bundled model.

The same contract as the Kotlin class (:mod:`edgekit.stages.bundle.kotlin`): every input a parameter of ``run``,
filled by its dtype (image pixels 0-255 row-major, already resized; token ids as ``[Int32]`` / ``[Int64]``;
other values as ``[Float]``, standardized and quantized as ``edgekit.json`` says); every output dequantized, by
tensor name; the task's decoder as ``edgekit predict`` reads it. No Swift toolchain can be installed on the
machines edgekit is tested on: the tests check its structure, not a compile.

Example:
    >>> "copy(" in swift(manifest)  # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.stages.bundle.app import COCO_KEYPOINTS, state_pairs
from edgekit.stages.bundle.kotlin import identifier, values_per_sample

_ELEMENT = {"float32": "Float32", "int8": "Int8", "uint8": "UInt8", "int16": "Int16", "int32": "Int32",
            "int64": "Int64", "bool": "UInt8"}  # fmt: skip


def _fill(item: dict[str, Any], param: str) -> tuple[str, str]:
    """The parameter's Swift type and the expression making the input's ``Data``."""
    pre, dtype = item["preprocessing"], item["dtype"]
    q = item["quantization"] or {"scale": 1.0, "zero_point": 0}
    if pre["kind"] == "image" and pre["feed"] == "uint8_pixels":
        return "[Float]", f"Data({param}.map {{ UInt8(clamping: Int($0.rounded())) }})"
    if dtype in ("int32", "int64"):
        kind = "[Int32]" if dtype == "int32" else "[Int64]"
        return kind, f"{param}.withUnsafeBufferPointer {{ Data(buffer: $0) }}"
    if "mean" in pre:
        mean = ", ".join(str(float(m)) for m in pre["mean"])
        std = ", ".join(str(float(s)) for s in pre["std"])
        scaled = f"{param}.enumerated().map {{ i, v -> Float in let mean: [Float] = [{mean}]; let std: [Float] = [{std}]; return (v - mean[i % mean.count]) / std[i % std.count] }}"
    else:
        scaled = param
    if dtype in ("int8", "uint8"):
        to_byte = "UInt8(bitPattern: Int8(clamping: q))" if dtype == "int8" else "UInt8(clamping: q)"
        return "[Float]", (f"Data(({scaled}).map {{ v -> UInt8 in let q = Int((v / {q['scale']} + {q['zero_point']}).rounded()); "
                           f"return {to_byte} }})")  # fmt: skip
    return "[Float]", f"({scaled}).withUnsafeBufferPointer {{ Data(buffer: $0) }}"


def _read(item: dict[str, Any]) -> str:
    """An expression reading the output tensor ``output`` as dequantized ``[Float]``."""
    element = _ELEMENT.get(item["dtype"], "Float32")
    q = item.get("quantization")
    value = (
        f"(Float(v) - {q['zero_point']}) * {q['scale']}"
        if q and item["dtype"] in ("int8", "uint8", "int16")
        else "Float(v)"
    )
    return f"output.data.withUnsafeBytes {{ Array($0.bindMemory(to: {element}.self)) }}.map {{ v in {value} }}"


def _decoder(manifest: dict[str, Any], call: str, params: str) -> str:
    task, post = manifest["task"], manifest["postprocessing"]
    label = "(i < labels.count ? labels[i] : String(i))"
    if task == "classifier":
        scores = ("let m = raw.max() ?? 0; let e = raw.map { exp($0 - m) }; let s = e.reduce(0, +); let scores = e.map { $0 / s }"
                  if post.get("softmax") == "apply" else "let scores = raw")  # fmt: skip
        return f"""
    /// The top-k classes as (label, probability).
    func classify({params}, k: Int = {post.get("top_k", 5)}) throws -> [(String, Float)] {{
        let raw = try {call}["{post["output"]}"]!
        {scores}
        return scores.indices.sorted {{ scores[$0] > scores[$1] }}.prefix(k).map {{ i in ({label}, scores[i]) }}
    }}
"""
    if task == "anomaly_scorer" and post.get("window_reduce"):  # a streaming scorer: scoreStep(), after step()
        return f"""
    func isAnomaly(_ score: Float) -> Bool {{ score > {post["threshold"]} }}
"""
    if task == "anomaly_scorer":
        return f"""
    /// The anomaly score; edgekit.json: {post["anomaly_if"]}.
    func score({params}) throws -> Float {{ try {call}["{post["output"]}"]![0] }}

    func isAnomaly(_ score: Float) -> Bool {{ score > {post["threshold"]} }}
"""
    if task == "binary-classifier":
        return f"""
    func probability({params}) throws -> Float {{ try {call}["{post["output"]}"]![0] }}
"""
    if task == "detector":
        if post.get("classes"):
            count = f'min(Int(out["{post["count"]}"]![0]), scores.count)' if post.get("count") else "scores.count"
            pick = f"""        let boxes = out["{post["boxes"]}"]!, classes = out["{post["classes"]}"]!, scores = out["{post["scores"]}"]!
        return (0..<{count}).filter {{ scores[$0] >= minScore }}.map {{ n in
            let i = Int(classes[n]); return Detection(label: {label}, index: i, score: scores[n], box: Array(boxes[4 * n..<4 * n + 4]))
        }}"""
        else:
            pick = f"""        let boxes = out["{post["boxes"]}"]!, perClass = out["{post["scores"]}"]!
        let n = boxes.count / 4, classes = perClass.count / n
        let found = (0..<n).map {{ b -> Detection in
            let i = (0..<classes).max {{ perClass[b * classes + $0] < perClass[b * classes + $1] }} ?? 0
            return Detection(label: {label}, index: i, score: perClass[b * classes + i], box: Array(boxes[4 * b..<4 * b + 4]))
        }}.filter {{ $0.score >= minScore }}.sorted {{ $0.score > $1.score }}
        var kept: [Detection] = []
        for d in found where !kept.contains(where: {{ $0.index == d.index && iou($0.box, d.box) > 0.5 }}) {{ kept.append(d) }}
        return kept"""
        return f"""
    /// One detection: label, class index, score and box [ymin, xmin, ymax, xmax] normalized to the image.
    struct Detection {{ let label: String; let index: Int; let score: Float; let box: [Float] }}

    private func iou(_ a: [Float], _ b: [Float]) -> Float {{
        let h = max(0, min(a[2], b[2]) - max(a[0], b[0])), w = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - h * w
        return union > 0 ? h * w / union : 0
    }}

    func detect({params}, minScore: Float = {post.get("score_threshold", 0.5)}) throws -> [Detection] {{
        let out = try {call}
{pick}
    }}
"""
    if task == "pose":
        names = ", ".join(f'"{n}"' for n in COCO_KEYPOINTS)
        return f"""
    /// One keypoint: x and y normalized to the image, and its score.
    struct Keypoint {{ let name: String; let x: Float; let y: Float; let score: Float }}

    private let keypointNames = [{names}]

    func keypoints({params}) throws -> [Keypoint] {{
        let v = try {call}["{post["output"]}"]!  // rows of (y, x, score)
        return (0..<v.count / 3).map {{ i in
            Keypoint(name: v.count / 3 == keypointNames.count ? keypointNames[i] : String(i), x: v[3 * i + 1], y: v[3 * i], score: v[3 * i + 2])
        }}
    }}
"""
    if task == "segmenter":
        out = next(o for o in manifest["outputs"] if o["name"] == post["output"])
        if post.get("form") == "scores":
            c = out["shape"][-1]
            ids = (
                f"return (0..<v.count / {c}).map {{ p in (0..<{c}).max {{ v[p * {c} + $0] < v[p * {c} + $1] }} ?? 0 }}"
            )
        else:
            ids = "return v.map { Int($0) }"
        return f"""
    /// The class id of each pixel of the model's {out["shape"][1]}x{out["shape"][2]} map, row by row.
    func segment({params}) throws -> [Int] {{
        let v = try {call}["{post["output"]}"]!
        {ids}
    }}
"""
    return ""


def _streaming(manifest: dict[str, Any], inputs: list[tuple[dict[str, Any], str]]) -> str:
    """``step`` / ``reset`` of a streaming model: its state kept between calls, fed back each step."""
    pairs = state_pairs(manifest)
    if not pairs:
        return ""
    states = {i["name"]: o["name"] for i, o in pairs}
    signature = ", ".join(f"{p}: {_fill(item, p)[0]}" for item, p in inputs if item["name"] not in states)
    args = ", ".join(f'{p}: state["{item["name"]}"] ?? [Float](repeating: 0, count: {values_per_sample(item["shape"])})'
                     if item["name"] in states else f"{p}: {p}" for item, p in inputs)  # fmt: skip
    keep = "\n".join(f'        state["{i}"] = out["{o}"]!' for i, o in states.items())
    dropped = ", ".join(f'"{o}"' for o in states.values())
    reduce = manifest["postprocessing"].get("window_reduce")
    names = ", ".join(f"{p}: {p}" for item, p in inputs if item["name"] not in states)
    return f"""
    /// Streaming: the recurrent state, kept between step() calls, fed back at each step; reset() starts a stream.
    private var state: [String: [Float]] = [:]

    func reset() {{ state = [:]{"; errors = []" if reduce else ""} }}
{_window_score(manifest, signature, names) if reduce else ""}
    /// One timestep in; that step's outputs out (the state outputs are kept for the next step).
    func step({signature}) throws -> [String: [Float]] {{
        let out = try run({args})
{keep}
        return out.filter {{ ![{dropped}].contains($0.key) }}
    }}
"""


def _window_score(manifest: dict[str, Any], signature: str, args: str) -> str:
    """``scoreStep``: a streaming scorer's anomaly score after one more row, its window reduction of the last
    ``steps`` rows' errors (``postprocessing.window_reduce``, as ``run.py`` and edgekit compute it)."""
    post = manifest["postprocessing"]
    reduce, steps = post["window_reduce"], int(post["window_reduce"]["steps"])
    k = max(1, int(reduce.get("smoothing", 1)))
    body = {
        "mean": "        return errors.flatMap { $0 }.reduce(0, +) / Float(errors.count * channels)",
        "max": "        return errors.flatMap { $0 }.max() ?? 0",
        "smoothed_max": f"""        var total: Float = 0
        for c in 0..<channels {{
            var peak = -Float.infinity
            for start in 0...(errors.count - {k}) {{
                peak = max(peak, (start..<start + {k}).map {{ errors[$0][c] }}.reduce(0, +) / {k})
            }}
            total += peak
        }}
        return total / Float(channels)""",
    }[reduce["kind"]]
    return f"""
    private var errors: [[Float]] = []

    /// The anomaly score after one more row: the {reduce["kind"]} of the last {steps} rows' errors, as the windowed
    /// model scores a window; nil until {steps} rows have come. isAnomaly() gives the verdict.
    func scoreStep({signature}) throws -> Float? {{
        errors.append(try step({args})["{post["output"]}"]!)
        if errors.count > {steps} {{ errors.removeFirst() }}
        if errors.count < {steps} {{ return nil }}
        let channels = errors[0].count
{body}
    }}
"""


def swift(manifest: dict[str, Any]) -> str:
    """The Swift class for the bundled model (see the module docstring).

    Example:
        >>> "func run(" in swift(manifest)  # doctest: +SKIP
        True
    """
    model = Path(manifest["model"]["file"])
    taken: set[str] = {"labels", "interpreter"}
    inputs = [(item, identifier(item["name"], taken)) for item in manifest["inputs"]]
    params, feeds = [], []
    for item, param in inputs:
        kind, data = _fill(item, param)
        params.append(f"{param}: {kind}")
        pre = item["preprocessing"]
        what = (f"{pre['size'][0]}x{pre['size'][1]} {pre['color']} pixels (0-255, row-major, resized bilinearly first)"
                if pre["kind"] == "image" else f"{values_per_sample(item['shape'])} values")  # fmt: skip
        feeds.append(f"""        // "{item["name"]}": {item["dtype"]} {item["shape"]}, {what}
        precondition({param}.count == {values_per_sample(item["shape"])})
        try interpreter.copy({data}, toInputAt: try index(of: "{item["name"]}", count: interpreter.inputTensorCount) {{ try interpreter.input(at: $0) }})""")
    reads = "\n".join(f"""        do {{
            let output = try interpreter.output(at: try index(of: "{o["name"]}", count: interpreter.outputTensorCount) {{ try interpreter.output(at: $0) }})
            outputs["{o["name"]}"] = {_read(o)}
        }}""" for o in manifest["outputs"])  # fmt: skip
    fresh = ("        // Recurrent state: a fresh interpreter per independent call starts from zero state, as validated.\n"
             "        interpreter = try EdgekitModel.makeInterpreter()\n") if manifest["state"]["reset_before_each_call"] else ""  # fmt: skip
    labels = ('Bundle.main.path(forResource: "labels", ofType: "txt").flatMap { try? String(contentsOfFile: $0) }?'
              '.split(separator: "\\n").map(String.init) ?? []' if manifest["postprocessing"].get("labels") else "[]")  # fmt: skip
    signature = ", ".join(params)
    call = f"run({', '.join(f'{p}: {p}' for _, p in inputs)})"
    return f"""// Generated by {manifest["created_by"]} for {model.name} ({manifest["task"]}): from edgekit.json.
import Foundation
import TensorFlowLite

final class EdgekitModel {{
    private var interpreter: Interpreter
    private let labels: [String]

    init() throws {{
        interpreter = try EdgekitModel.makeInterpreter()
        labels = {labels}
    }}

    private static func makeInterpreter() throws -> Interpreter {{
        let path = Bundle.main.path(forResource: "{model.stem}", ofType: "tflite")!
        var options = Interpreter.Options()
        options.threadCount = 2
        let interpreter = try Interpreter(modelPath: path, options: options)
        try interpreter.allocateTensors()
        return interpreter
    }}

    private func index(of name: String, count: Int, tensor: (Int) throws -> Tensor) throws -> Int {{
        for i in 0..<count {{ if try tensor(i).name == name {{ return i }} }}
        fatalError("no tensor named \\(name) in {model.name}")
    }}

    /// Runs the model on every input; each output, dequantized to float, by tensor name.
    func run({signature}) throws -> [String: [Float]] {{
{fresh}{chr(10).join(feeds)}
        try interpreter.invoke()
        var outputs: [String: [Float]] = [:]
{reads}
        return outputs
    }}
{_decoder(manifest, call, signature)}{_streaming(manifest, inputs)}}}
"""
