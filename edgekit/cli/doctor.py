"""``edgekit doctor``: the runtimes, converters, CPU features, GPUs and Edge TPU tools found on this machine."""

from __future__ import annotations

from edgekit.cli.app import app
from edgekit.cli.options import json_option
from edgekit.cli.render import emit_json, print_doctor


@app.command("doctor")
@json_option("Print the report as JSON.")
def doctor_cmd(as_json: bool) -> None:
    """Report runtimes, converters, CPU features, GPUs and Edge TPU tools found here."""
    from edgekit.doctor import diagnose

    report = diagnose()
    if as_json:
        emit_json(report)
    else:
        print_doctor(report)
