"""The validation report: ``report.json`` (everything), ``report.md`` and a self-contained ``report.html``.

The HTML needs no network: every plot is an inline SVG drawn by matplotlib (the ``report`` extra; without it the
page says so and has no plots) —
accuracy (or error) against latency per artifact and target with the Pareto
front marked and marker area by file size, latency distributions per cell,
and the task's own plot (confusion matrices, ROC curves, or predicted against
actual values).

Example:
    >>> write_reports(report, arrays, Path("runs/demo/mobilenet_digits/validate"))  # doctest: +SKIP
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.common.io import write_atomic
from edgekit.common.metrics import agreement_figure, main_metric, per_sample_scores, roc_curve
from edgekit.rundir import RunDir

TARGET_COLORS = {"cpu": "#1f77b4", "gpu": "#2ca02c", "edgetpu": "#d62728"}
FORMAT_MARKERS = {"tflite": "o", "onnx": "s"}
MAX_TASK_PANELS = 6


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def main_figure(report: dict[str, Any], result_metrics: dict[str, Any] | None) -> tuple[str, Any]:
    """``("<first output>: <main metric>", value)`` of one result's (or the reference's) metrics.

    Example:
        >>> main_figure({"outputs": {"head": {"kind": "classifier"}}}, {"head": {"accuracy": 0.98}})
        ('head: accuracy', 0.98)
    """
    first = next(iter(report["outputs"]))
    metrics = (result_metrics or {}).get(first) or {}
    name, _ = main_metric(report["outputs"][first]["kind"], metrics)
    return f"{first}: {name}", metrics.get(name)


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per cell: artifact, precision, target, used, threads, status, main metric, agreement, latency,
    size, init, peak memory (the table both the Markdown and the HTML show).

    Example:
        >>> table_rows({"outputs": {"y": {"kind": "regressor"}}, "results": []})
        []
    """
    rows = []
    for r in report["results"]:
        _, value = main_figure(report, r["metrics"])
        agreement, rel_err = "–", None
        for a in (r["agreement"] or {}).values():  # the first output's
            figure, agreed = agreement_figure(a)
            agreement, rel_err = f"{figure.replace('_agreement', '')} {agreed:.6g}", a["max_rel_error"]
            break
        per = "/step" if r.get("latency_per") == "step" else ""  # a streaming file: latency of one step
        lat = {k: _fmt(v) + per for k, v in (r["latency_ms"] or {}).items()}
        status = r["status"] if r["status"] in ("measured", "checked") else f"{r['status']}: {r['reason']}"
        rows.append([
            r["artifact"], r["precision"], r["target_requested"], r["target_used"] or "–", str(r["threads"]),
            status, _fmt(value), agreement, _fmt(rel_err, 2), lat.get("p50", _fmt(None)), lat.get("p90", _fmt(None)),
            lat.get("p99", _fmt(None)), f"{r['size_bytes'] / 1e6:.3f}", _fmt(r["init_ms"]), _fmt(r["peak_rss_mb"]),
        ])  # fmt: skip
    return rows


HEADER = ["artifact", "precision", "target", "used", "threads", "status", "main metric", "agreement",
          "max rel err", "p50 ms", "p90 ms", "p99 ms", "size MB", "init ms", "peak RSS MiB"]  # fmt: skip


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: data, reference, the table, broken budgets, recommendations.

    Example:
        >>> markdown(report).splitlines()[0]  # doctest: +SKIP
        '# edgekit validate'
    """
    metric_name, ref_value = main_figure(report, (report["reference"] or {}).get("metrics"))
    ref = report["reference"]
    lines = [
        "# edgekit validate", "",
        f"Data: `{report['data']['path']}`, {report['data']['samples']} samples"
        f"{'' if report['data']['labelled'] else ' (unlabelled: agreement and latency only)'}. "
        f"Main metric: {metric_name}. Latency at batch 1 over every sample after 10 warm-up runs.", "",
        f"Reference (Keras): {_fmt(ref_value)}" if ref["status"] == "measured"
        else f"Reference (Keras): unavailable: {ref['reason']}",
        f"Agreement measured against: {report['agreement_reference'] or 'nothing (no reference)'}", "",
        "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER),
    ]  # fmt: skip
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in table_rows(report)]
    lines += ["", "## Budgets", ""]
    if not report["budgets"]:
        lines.append("No budgets set.")
    else:
        lines.append(", ".join(f"{k} = {v:g}" for k, v in report["budgets"].items()))
        lines += [f"- broken: {b['message']}" for b in report["budgets_broken"]] or ["- all kept"]
    if report.get("layer_errors"):
        lines += ["", "## Per-layer quantization error (files that broke a budget)", ""]
        for label, found in report["layer_errors"].items():
            if "unavailable" in found:
                lines.append(f"- `{label}`: {found['unavailable']}")
                continue
            lines += [f"`{label}`, worst layers (SNR of the error each adds; under ~20 dB breaks int8):", "",
                      "| layer | op | SNR dB |", "|---|---|---|"]  # fmt: skip
            lines += [f"| {e['keras_layer'] or e['name']} | {e['op']} | {e['snr_db']:g} |" for e in found["worst"]]
            lines.append("")
    lines += ["", "## Recommendations", ""]
    for target, advice in report["recommendations"].items():
        if advice.get("reason"):
            lines.append(f"- **{target}**: none ({advice['reason']})")
        else:
            s, f = advice["smallest"], advice["fastest"]
            lines.append(f"- **{target}**: smallest `{s['artifact']}` ({s['size_bytes'] / 1e6:.3f} MB); fastest "
                         f"`{f['artifact']}` ({f['p50_ms']:g} ms p50 at {f['threads']} thread(s))")  # fmt: skip
    return "\n".join(lines) + "\n"


# -- plots -------------------------------------------------------------------------------------


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    if "<metadata>" in text:  # matplotlib's RDF block: a date and namespace URLs, nothing a reader needs
        text = text[: text.index("<metadata>")] + text[text.index("</metadata>") + len("</metadata>") :]
    return text


def _log_x(ax: Any) -> None:
    """A log latency axis with plain-number labels on the decades only (minor labels overprint)."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def tradeoff_plot(report: dict[str, Any]) -> str:
    """Main metric against p50 latency, one point per measured cell; marker area by size, Pareto front joined.

    Example:
        >>> tradeoff_plot(report).startswith("<svg")  # doctest: +SKIP
        True
    """
    import matplotlib.pyplot as plt

    metric_name, ref_value = main_figure(report, (report["reference"] or {}).get("metrics"))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    measured = [r for r in report["results"] if r["status"] == "measured"]
    sizes = [r["size_bytes"] for r in measured] or [1]
    for r in measured:
        _, value = main_figure(report, r["metrics"])
        if value is None:
            continue
        area = 40 + 360 * r["size_bytes"] / max(sizes)
        ax.scatter(
            r["latency_ms"]["p50"],
            value,
            s=area,
            alpha=0.7,
            c=TARGET_COLORS.get(r["target_requested"]),
            marker=FORMAT_MARKERS.get(r["format"], "o"),
            edgecolors="black" if r.get("pareto") else "none",
        )
        if r.get("pareto"):  # the others are in the table; labelling every point overprints
            ax.annotate(f"{Path(r['artifact']).name} ×{r['threads']}", (r["latency_ms"]["p50"], value), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")  # fmt: skip
    for target in report["targets"]:
        front = sorted(
            (r["latency_ms"]["p50"], main_figure(report, r["metrics"])[1])
            for r in measured if r.get("pareto") and r["target_requested"] == target
        )  # fmt: skip
        if len(front) > 1:
            ax.plot(*zip(*front, strict=True), "--", color=TARGET_COLORS.get(target), lw=1, label=f"Pareto {target}")
    if ref_value is not None:
        ax.axhline(ref_value, color="grey", lw=1, ls=":", label="Keras reference")
    for target in sorted({r["target_requested"] for r in measured}):
        ax.scatter([], [], c=TARGET_COLORS.get(target), label=target)
    _log_x(ax)
    ax.set_xlabel("latency p50, ms (batch 1, log scale)")
    ax.set_ylabel(metric_name)
    ax.set_title("main metric vs latency: area ∝ file size, ○ TFLite, □ ONNX, outlined = Pareto", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _svg(fig)


def layer_error_plot(report: dict[str, Any]) -> str | None:
    """Each diagnosed file's per-layer SNR along the graph (the error each quantized layer adds).

    Example:
        >>> layer_error_plot({"layer_errors": {}}) is None
        True
    """
    import matplotlib.pyplot as plt

    found = {k: v["layers"] for k, v in (report.get("layer_errors") or {}).items() if "layers" in v}
    if not found:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for label, layers in found.items():
        ax.plot(range(len(layers)), [e["snr_db"] for e in layers], marker="o", ms=3, label=Path(label).name)
    ax.axhline(20, color="#b00", lw=0.8, ls="--")
    ax.set_xlabel("quantized layer, graph order")
    ax.set_ylabel("SNR, dB (higher is better)")
    ax.set_title("per-layer quantization error")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _svg(fig)


def latency_plot(report: dict[str, Any], times: dict[int, np.ndarray]) -> str:
    """Box plots of every measured cell's per-sample latency.

    Example:
        >>> latency_plot(report, {0: np.array([0.1, 0.2])}).startswith("<svg")  # doctest: +SKIP
        True
    """
    import matplotlib.pyplot as plt

    keys = sorted(times)
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(keys) + 1.2))
    labels = [
        f"{Path(report['results'][i]['artifact']).name} · {report['results'][i]['target_requested']} "
        f"×{report['results'][i]['threads']}"
        for i in keys
    ]
    ax.boxplot([times[i] for i in keys], orientation="horizontal", tick_labels=labels, flierprops={"ms": 2})
    _log_x(ax)
    ax.set_xlabel("latency per sample, ms (log scale)")
    ax.set_title("latency distributions")
    ax.grid(alpha=0.3, axis="x")
    return _svg(fig)


def _task_panels(report: dict[str, Any], arrays: dict[str, Any]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(title, outputs) for the reference and the first measured cell of each artifact."""
    panels = []
    if arrays.get("reference") is not None:
        panels.append(("Keras reference", arrays["reference"]))
    seen = set()
    for i, r in enumerate(report["results"]):
        if i in arrays["outputs"] and r["artifact"] not in seen:
            seen.add(r["artifact"])
            panels.append((Path(r["artifact"]).name, arrays["outputs"][i]))
    return panels[:MAX_TASK_PANELS]


def task_plot(report: dict[str, Any], arrays: dict[str, Any], x: np.ndarray | None) -> str | None:
    """Confusion matrices, ROC curves or predicted-vs-actual for the first output; None without labels.

    Example:
        >>> task_plot(report, {"labels": None, "outputs": {}, "reference": None}, None) is None  # doctest: +SKIP
        True
    """
    import matplotlib.pyplot as plt

    name = next(iter(report["outputs"]))
    kind = report["outputs"][name]["kind"]
    labels = (arrays.get("labels") or {}).get(name)
    panels = _task_panels(report, arrays)
    if labels is None or not panels:
        return None
    if kind == "classifier":
        fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8), squeeze=False)
        classes = report["data"].get("labels") or (report["run_task"] or {}).get("labels")
        for ax, (title, outs) in zip(axes[0], panels, strict=True):
            probs = outs[name].reshape(len(outs[name]), -1)
            k = probs.shape[1]
            cm = np.zeros((k, k), np.int64)
            np.add.at(cm, (labels.astype(np.int64), probs.argmax(-1)), 1)
            ax.imshow(cm, cmap="Blues")
            for (a, b), v in np.ndenumerate(cm):
                if k <= 12 and v:
                    ax.text(b, a, str(v), ha="center", va="center", fontsize=7,
                            color="white" if v > cm.max() / 2 else "black")  # fmt: skip
            ticks = [str(c) for c in classes] if classes and len(classes) == k else [str(c) for c in range(k)]
            if k <= 12:
                ax.set_xticks(range(k), ticks, fontsize=7)
                ax.set_yticks(range(k), ticks, fontsize=7)
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("predicted", fontsize=8)
        axes[0][0].set_ylabel("true", fontsize=8)
        fig.suptitle(f"confusion matrices ({name})", fontsize=9)
    elif kind in ("binary-classifier", "anomaly_scorer", "autoencoder"):
        fig, ax = plt.subplots(figsize=(4.5, 4.2))
        for title, outs in panels:
            scores = per_sample_scores(kind, outs[name], x) if kind != "binary-classifier" else outs[name].ravel()
            curve = roc_curve(scores, labels)
            ax.plot(curve["fpr"], curve["tpr"], lw=1.2, label=title)
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"ROC curves ({name})")
        ax.legend(fontsize=7)
    else:
        fig, ax = plt.subplots(figsize=(4.5, 4.2))
        y = labels.reshape(len(labels), -1)[:, 0]
        for title, outs in panels:
            ax.scatter(y, outs[name].reshape(len(y), -1)[:, 0], s=8, alpha=0.6, label=title)
        lo, hi = float(y.min()), float(y.max())
        ax.plot([lo, hi], [lo, hi], ":", color="grey")
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title(f"predicted vs actual ({name})")
        ax.legend(fontsize=7)
    return _svg(fig)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgekit validate</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: left; }}
th {{ background: #f3f3f3; }}
tr.unavailable td, tr.failed td {{ color: #888; }}
tr.pareto td:first-child {{ font-weight: bold; }}
figure {{ margin: 1.5em 0; }} .broken {{ color: #b00; }}
</style></head><body>
{body}
</body></html>
"""


def _layer_tables(report: dict[str, Any]) -> str:
    """The worst layers of each file that broke a budget, as HTML tables (empty when none was diagnosed)."""
    if not report.get("layer_errors"):
        return ""
    parts = ["<h2>Per-layer quantization error (files that broke a budget)</h2>"]
    for label, found in report["layer_errors"].items():
        if "unavailable" in found:
            parts.append(f"<p>{html.escape(label)}: {html.escape(found['unavailable'])}</p>")
            continue
        rows = "".join(f"<tr><td>{html.escape(e['keras_layer'] or e['name'])}</td><td>{e['op']}</td>"
                       f"<td>{e['snr_db']:g}</td></tr>" for e in found["worst"])  # fmt: skip
        parts.append(f'<p>{html.escape(label)}: worst layers</p><table class="layers"><thead><tr><th>layer</th>'
                     f"<th>op</th><th>SNR dB</th></tr></thead><tbody>{rows}</tbody></table>")  # fmt: skip
    return "".join(parts)


def html_page(report: dict[str, Any], arrays: dict[str, Any], x: np.ndarray | None, md: str) -> str:
    """The self-contained HTML report (inline SVG plots, no scripts, no network); ``md`` is :func:`markdown`'s
    text, whose header paragraphs and recommendations the page shows too.

    Example:
        >>> "<table" in html_page(report, arrays, x, markdown(report))  # doctest: +SKIP
        True
    """
    header = md.split("\n| ")[0]
    intro = "".join(f"<p>{html.escape(p.replace('`', ''))}</p>" for p in header.split("\n\n")[1:] if p.strip())
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    rows = []
    for r, row in zip(report["results"], table_rows(report), strict=True):
        cls = r["status"] + (" pareto" if r.get("pareto") else "")
        rows.append(f'<tr class="{cls}">' + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    budgets = "".join(f'<li class="broken">{html.escape(b["message"])}</li>' for b in report["budgets_broken"])
    advice = md.split("## Recommendations\n")[1]
    advice_html = "".join(
        f"<li>{html.escape(line[2:].replace('**', '').replace('`', ''))}</li>" for line in advice.splitlines() if line
    )
    plots = _plots(report, arrays, x)
    body = (
        "<h1>edgekit validate</h1>" + intro
        + f'<table id="results"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        + "<h2>Budgets</h2>"
        + (f"<p>{html.escape(', '.join(f'{k} = {v:g}' for k, v in report['budgets'].items()))}</p>"
           if report["budgets"] else "<p>No budgets set.</p>")
        + (f"<ul>{budgets}</ul>" if budgets else "")
        + _layer_tables(report)
        + f'<h2>Recommendations</h2><ul id="recommendations">{advice_html}</ul>'
        + "<h2>Plots</h2>" + plots
    )  # fmt: skip
    return PAGE.format(body=body)


def _plots(report: dict[str, Any], arrays: dict[str, Any], x: np.ndarray | None) -> str:
    """The report's figures as inline SVG; a paragraph saying why there are none where matplotlib (the ``report``
    extra: ``pip install edgekit[report]``) is not installed, as on a Pi's runtime lane."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return "<p>No plots: matplotlib is not installed (pip install 'edgekit[report]').</p>"
    import matplotlib

    matplotlib.use("Agg")
    figures = [("tradeoff", tradeoff_plot(report))]
    if arrays["times_ms"]:
        figures.append(("latency", latency_plot(report, arrays["times_ms"])))
    if task := task_plot(report, arrays, x):
        figures.append(("task", task))
    if layers := layer_error_plot(report):
        figures.append(("layer_errors", layers))
    return "".join(f'<figure id="{key}">{svg}</figure>' for key, svg in figures)


def write_reports(report: dict[str, Any], arrays: dict[str, Any], out_dir: Path, x: np.ndarray | None = None) -> None:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``out_dir``, each atomically.

    Example:
        >>> write_reports(report, arrays, Path("validate"))  # doctest: +SKIP
    """
    run = RunDir(out_dir)
    md = markdown(report)
    page = html_page(report, arrays, x, md)
    write_atomic(run.report_md, md)
    write_atomic(run.report_html, page)
    report.update(run.write_record("validate", report))
