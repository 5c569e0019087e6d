"""The ``edgekit`` command line.

Every command maps :class:`~edgekit.errors.EdgekitError` to one line on stderr
and the error's exit code; usage errors exit with 2. Nothing here imports
TensorFlow unless a build-lane command (convert, train, optimize) runs.

:mod:`edgekit.cli.app` holds the click group and the entry point, :mod:`edgekit.cli.render` everything
shown, :mod:`edgekit.cli.options` the shared options; each other module registers its command(s) on the
group when imported here.

Example:
    $ edgekit inspect model.tflite --json
    $ edgekit bench model.tflite --threads 2 --runs 200
    $ edgekit doctor
"""

from edgekit.cli import bench, bundle, convert, doctor, inspect, optimize, train, validate  # noqa: F401  (registers)
from edgekit.cli.app import app, main, run
from edgekit.cli.render import emit_json

__all__ = ["app", "emit_json", "main", "run"]
