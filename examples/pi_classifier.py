"""A Raspberry Pi image classifier: every image in a folder, or frames from the Pi camera, through a bundle.

Needs only the bundle (``edgekit bundle ... --platform rpi|coral``) and its requirements
(ai-edge-litert, numpy, pillow): it imports the bundle's own ``run.py`` for preprocessing,
labels and the Edge TPU delegate, so what it prints is what the bundle was validated to do.

Example:
    $ python examples/pi_classifier.py bundles/imagenet_rpi photos/
    bird.bmp      chickadee 0.99
    cat.bmp       Egyptian cat 0.79
    $ python examples/pi_classifier.py bundles/imagenet_rpi --camera --frames 10   # picamera2 on the Pi
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def load_bundle_app(bundle: Path):
    """The bundle's own run.py as a module."""
    spec = importlib.util.spec_from_file_location("bundle_run", bundle / "run.py")
    if spec is None or not (bundle / "run.py").is_file():
        raise SystemExit(f"pi_classifier: error: {bundle}: no run.py (bundle it with --platform rpi or coral)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def camera_frames(count: int, interval: float):
    """Frames from the Pi camera (picamera2), as pillow images."""
    try:
        from picamera2 import Picamera2
        from PIL import Image
    except ImportError as exc:
        raise SystemExit(f"pi_classifier: camera unavailable: {exc} (sudo apt install python3-picamera2)") from None
    camera = Picamera2()
    camera.configure(camera.create_still_configuration())
    camera.start()
    try:
        for n in range(count):
            yield f"frame{n:04d}", Image.fromarray(camera.capture_array()).convert("RGB")
            time.sleep(interval)
    finally:
        camera.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("folder", type=Path, nargs="?", help="images to classify (sorted by name)")
    parser.add_argument("--camera", action="store_true", help="classify frames from the Pi camera instead")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    app = load_bundle_app(args.bundle)
    try:
        manifest = app.load_manifest(args.bundle)
        app.check_files(args.bundle, manifest)
        labels = app.read_labels(args.bundle, manifest)
        interp = app.open_interpreter(args.bundle, manifest, threads=4)
        item = manifest["inputs"][0]
        if args.camera:
            sources = ((name, lambda image=image: app.pil_input(image, item))
                       for name, image in camera_frames(args.frames, args.interval))  # fmt: skip
        else:
            if args.folder is None or not args.folder.is_dir():
                raise app.BundleError(f"{args.folder}: not a folder of images (or pass --camera)")
            paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not paths:
                raise app.BundleError(f"{args.folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            sources = ((p.name, lambda p=p: app.image_input(p, item)) for p in paths)
        results = []
        for name, make_batch in sources:
            start = time.perf_counter()
            outputs = app.run_batch(interp, manifest, [make_batch()])
            ms = (time.perf_counter() - start) * 1e3
            result = {"input": name, **app.postprocess(outputs, manifest, labels, args.top_k)[0], "ms": round(ms, 2)}
            results.append(result)
            if not args.json:
                print(f"{name}: {app.describe(result)}  ({ms:.1f} ms)", flush=True)
    except app.BundleError as exc:
        print(f"pi_classifier: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
