"""``edgekit bundle`` (pack a model for an app), ``edgekit predict`` (run one) and ``edgekit verify`` (check one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgekit.cli.app import app
from edgekit.cli.options import floats, json_option
from edgekit.cli.render import emit_json, notice, out, print_bundle, print_predictions, print_verification


@app.command("bundle")
@click.argument("source", type=click.Path(path_type=str))
@click.option("--platform", type=click.Choice(["rpi", "coral", "android", "ios"]), required=True)
@click.option("--labels", type=click.Path(path_type=str), default=None, help="Labels file, one per line.")
@click.option("--out", "out_dir", type=click.Path(path_type=str), default=None, help="Bundle folder (new).")
@click.option("--zip", "zip_archive", is_flag=True, help="Also write OUT.zip.")
@click.option("--mean", callback=floats, default=None, help="Image normalization: (pixel - mean) / std, per channel.")
@click.option("--std", callback=floats, default=None)
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--allow-over-budget",
    is_flag=True,
    help="Ship a file that broke a validate budget or convert's tolerance (edgekit.json says so).",
)
@click.option("--output-kind", default=None, help="What a bare model's output holds, [NAME=]KIND (e.g. keypoints).")
@click.option("--streaming", is_flag=True, help="Bundle the run's streaming artifacts (<run>/convert_streaming).")
@click.option("--sign", type=click.Path(path_type=str), default=None, help="Ed25519 private key (PEM) to sign with.")
@json_option("Print edgekit.json.")
def bundle_cmd(
    source: str, platform: str, out_dir: str | None, zip_archive: bool, as_json: bool, **options: Any
) -> None:
    """Pack a run directory or a .tflite into a folder an app runs without guessing (edgekit.json)."""
    from edgekit.stages.bundle import bundle

    manifest = bundle(source, platform, out=out_dir, zip=zip_archive, **options)
    where = out_dir or f"bundles/{Path(manifest['model']['source']).stem}_{platform}"
    if as_json:
        emit_json(manifest)
        for warning in manifest["warnings"]:  # on stderr, as without --json
            notice("warning", warning)
    else:
        print_bundle(manifest, where, platform, zip_archive)


@app.command("predict")
@click.argument("source", type=click.Path(path_type=str))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Classes to show (default: the bundle's).")
@click.option("--labels", type=click.Path(path_type=str), default=None, help="Labels file for a bare model.")
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option("--key", type=click.Path(path_type=str), default=None, help="Public key the bundle must be signed by.")
@click.option("--target", type=click.Choice(["cpu", "pi"]), default="cpu", show_default=True,
              help="pi: the bundle's run.py on the Pi's software stack (aarch64; emulated on x86).")  # fmt: skip
@click.option("--output-kind", default=None, help="What a bare model's output holds, [NAME=]KIND (e.g. keypoints).")
@click.option("--out-dir", type=click.Path(path_type=str), default=None, help="Where segmentation masks go (PNG).")
@click.option("--draw", type=click.Path(path_type=str), default=None,
              help="Write each photo with its boxes, keypoints or mask drawn on it into this folder.")  # fmt: skip
@click.option("--raw", is_flag=True, help="The outputs' values as they are, not decoded.")
@click.option("--stream", is_flag=True, help="Each CSV row one timestep of a streaming model, the state carried.")
@json_option("A JSON list, one object per input.")
def predict_cmd(source: str, inputs: tuple[str, ...], as_json: bool, **options: Any) -> None:
    """Run a bundle (folder or zip) or a .tflite on images, .npy windows or CSV rows."""
    from edgekit.stages.bundle import predict

    results = predict(source, list(inputs), **options)
    if as_json:
        emit_json(results)
    else:
        print_predictions(results)
    for r in results:  # --target pi: the Pi's answer against this machine's
        if r.get("agrees_with_x86") is False:
            notice("warning", f"{r['input']}: the Pi's answer differs from this machine's ({r['x86_difference']})")


@app.command("verify")
@click.argument("source", type=click.Path(path_type=str))
@click.option("--key", type=click.Path(path_type=str), default=None, help="Public key the bundle must be signed by.")
@click.option("--target", type=click.Choice(["cpu", "pi"]), default="cpu", show_default=True,
              help="pi: also install requirements.txt, run run.py on the Pi's stack, compare with x86.")  # fmt: skip
@json_option()
def verify_cmd(source: str, key: str | None, target: str, as_json: bool) -> None:
    """Check a bundle: its signature (with --key), schema version, every sha256, labels, that the model loads
    and runs from its spec.

    Exits 3 when the inference needs hardware that is not here (a compiled model without an Edge TPU).
    """
    from edgekit.stages.bundle import verify

    report = verify(source, key, target)
    if as_json:
        emit_json(report)
    else:
        print_verification(report)
    if report["unavailable"]:
        notice("unavailable", f"{report['unavailable']}; the rest verified")
        raise click.exceptions.Exit(3)


@app.command("keygen")
@click.argument("stem", type=click.Path(path_type=str))
def keygen_cmd(stem: str) -> None:
    """Make an Ed25519 key pair for signing bundles: STEM.pem (private, mode 0600) and STEM.pub (public)."""
    from edgekit.stages.bundle.signing import write_keypair

    private, public = write_keypair(stem)
    out.print(f"wrote {private} (sign with: edgekit bundle ... --sign {private})", markup=False)
    out.print(f"wrote {public} (check with: edgekit verify BUNDLE --key {public})", markup=False)
