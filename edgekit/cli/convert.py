"""``edgekit convert``: a Keras model to TFLite / ONNX artifacts, each checked against it; exit codes for failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgekit.cli.app import app
from edgekit.cli.options import custom_objects_option, json_option, with_mixed_budget_options
from edgekit.cli.render import emit_json, err, notice, print_conversion
from edgekit.common.parity import TASKS
from edgekit.contract import OUTPUT_KINDS


@app.command("convert")
@click.argument("source", type=click.Path(path_type=str))
@click.option(
    "--out", "out_dir", type=click.Path(path_type=str), default=None, help="Run directory (default: runs/<model name>)."
)
@click.option(
    "--to",
    default=None,
    help="Comma-separated outputs, e.g. tflite:fp32,tflite:int8,onnx:int8 (default: all the data allows).",
)
@click.option(
    "--calib", type=click.Path(path_type=str), default=None, help="Calibration data: image folder, .npy/.npz or .csv."
)
@click.option("--calib-samples", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--check-samples", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Static batch size of the artifacts."
)
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (9..18 with tf2onnx 1.17).")
@click.option("--int8-io", type=click.Choice(["int8", "uint8", "float32"]), default="int8", show_default=True)
@click.option(
    "--int8-granularity",
    type=click.Choice(["per-channel", "per-tensor"]),
    default="per-channel",
    show_default=True,
    help="Weight scales of int8 artifacts: per output channel (accurate) or per tensor (smaller).",
)
@custom_objects_option
@click.option(
    "--outputs",
    default=None,
    help="Comma-separated layer names: convert the model ending at their outputs (e.g. a VAE's z_mean).",
)
@click.option("--unsafe", is_flag=True, help="Turn Keras safe_mode off (loads Lambda layers: trusted files only).")
@click.option("--allow-select-tf-ops", is_flag=True, help="Keep ops TFLite builtins lack as TensorFlow ops.")
@click.option(
    "--task", type=click.Choice(TASKS), default=None, help="How outputs are compared (default: detected, see manifest)."
)
@click.option(
    "--input-range",
    default=None,
    help="Values the model's input takes, [NAME=]LO,HI (e.g. 0,1 for pixels/255; ';' between inputs).",
)
@click.option(
    "--output-kind",
    default=None,
    help=f"What an output holds, [NAME=]KIND: {', '.join(OUTPUT_KINDS)} (default: read from the model).",
)
@click.option("--labels", type=click.Path(path_type=str), default=None, help="Labels of the classifier output.")
@click.option(
    "--streaming",
    is_flag=True,
    help="One timestep per call, the recurrent state as explicit inputs and outputs (LSTM / GRU / SimpleRNN models).",
)
@click.option(
    "--input-shape",
    default=None,
    help="Fix an input's open sizes, [NAME=]SHAPE with the batch first (e.g. tokens=1x128; ';' between inputs).",
)
@click.option("--strict", is_flag=True, help="Exit 3 when a quantized artifact is out of its tolerance too.")
@with_mixed_budget_options
@json_option("Print the manifest as JSON.")
def convert_cmd(source: str, out_dir: str | None, calib: str | None, as_json: bool, **settings: Any) -> None:
    """Convert a Keras model (.keras, .h5, SavedModel or run directory) to TFLite and ONNX, checked against it."""
    from edgekit.stages.convert import ConvertSettings, convert

    out_dir = out_dir or str(Path("runs") / Path(source).stem)
    with err.status("converting") as status:
        manifest = convert(
            source, out_dir, settings=ConvertSettings.from_options(**settings), calib=calib,
            progress=lambda msg: status.update(msg),
        )  # fmt: skip
    if as_json:
        emit_json(manifest)
    else:
        print_conversion(manifest, out_dir)
    exit_on_failed_artifacts(manifest)


def exit_on_failed_artifacts(manifest: dict[str, Any]) -> None:
    """Name each failed artifact and each warning; exit 2 for an unsupported op (bad input), else 3 on failure.

    Under ``--strict`` a quantized artifact out of its tolerance fails the command too.
    """
    for warning in manifest.get("warnings", []):
        notice("warning", warning)
    for failure in manifest["failed"]:
        notice("failed", failure["error"])
    if any(f.get("unsupported_op") for f in manifest["failed"]):
        raise click.exceptions.Exit(2)  # the model needs a flag or a change: bad input, not a converter fault
    strict = manifest["settings"].get("strict") and any(
        a.get("verdict") == "out_of_tolerance" for a in manifest["artifacts"]
    )
    if manifest["failed"] or strict:
        raise click.exceptions.Exit(3)
