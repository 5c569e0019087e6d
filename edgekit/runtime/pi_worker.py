"""Run a TFLite model on the Pi's software stack: ``python pi_worker.py MODEL INPUTS.npz OUTPUTS.npz [--reset]``.

Runs under the Pi's own Python (:mod:`edgekit.runtime.pi`) with only ai-edge-litert and numpy: no edgekit
import. ``INPUTS.npz`` holds ``x0, x1, ...`` in the model's input order and dtypes (already quantized);
each sample (row) is one invoke, the recurrent state reset before each with ``--reset``; ``OUTPUTS.npz``
gets ``y0, y1, ...`` as the model returns them (raw) and ``litert`` (the runtime's version).

Example:
    $ python pi_worker.py model.tflite inputs.npz outputs.npz
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """Run every row of the inputs through the model; 0 on success, 2 with one line on stderr otherwise."""
    import numpy as np
    from ai_edge_litert import interpreter as litert

    model, inputs, outputs = argv[:3]
    try:
        interp = litert.Interpreter(model_path=model)
        interp.allocate_tensors()
        details_in, details_out = interp.get_input_details(), interp.get_output_details()
        with np.load(inputs) as f:
            arrays = [f[f"x{k}"] for k in range(len(details_in))]
        collected: list[list[np.ndarray]] = [[] for _ in details_out]
        for i in range(len(arrays[0])):
            if "--reset" in argv:
                interp.reset_all_variables()
            for detail, values in zip(details_in, arrays, strict=True):
                interp.set_tensor(detail["index"], values[i : i + 1])
            interp.invoke()
            for k, detail in enumerate(details_out):
                collected[k].append(interp.get_tensor(detail["index"]))
    except (ValueError, RuntimeError, KeyError) as exc:
        print(f"pi_worker: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 2
    version = getattr(litert, "__version__", None) or _version()
    np.savez(outputs, litert=np.array(version), **{f"y{k}": np.concatenate(c) for k, c in enumerate(collected)})
    return 0


def _version() -> str:
    from importlib import metadata

    return metadata.version("ai-edge-litert")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
