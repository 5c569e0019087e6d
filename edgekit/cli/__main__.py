"""``python -m edgekit.cli`` runs the CLI, as ``python -m edgekit`` does."""

from edgekit.cli import run

run()
