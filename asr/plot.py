"""Training curves from metrics.jsonl: loss, learning rate and dev WER/CER against step.

    plot_runs(["exp/small"], "exp/small/curves.png")           # what `asr train` writes at each evaluation
    plot_runs(["exp/small", "exp/small_synth"], "both.png")    # `asr plot EXP_DIR... --out both.png`

Each run is one colour in all three panels (dev WER solid, CER dashed), labelled with
its folder as given. The figure is drawn with matplotlib's object API (no pyplot, so no
display and no global state) and written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from asr.atomic import atomic_path
from asr.errors import AsrError


class PlotError(AsrError):
    """A folder without a readable metrics.jsonl."""


def read_metrics(exp_dir: str | os.PathLike) -> list[dict]:
    """The records of EXP/metrics.jsonl, in order (a torn last line, from a kill, is skipped)."""
    path = Path(exp_dir) / "metrics.jsonl"
    if not path.is_file():
        raise PlotError(f"{path}: not found (is {exp_dir} a training folder?)")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for line_no, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if line_no < len(lines):
                raise PlotError(f"{path}:{line_no}: not a JSON line") from None
    return records


def plot_runs(exp_dirs: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Draw the curves of every run in `exp_dirs` into one PNG at `out`. Returns `out`."""
    from asr.extras import import_whole

    Figure = import_whole("matplotlib.figure").Figure  # here: a second or two, only when plotting

    runs = [(str(d), read_metrics(d)) for d in exp_dirs]
    fig = Figure(figsize=(8, 9), layout="constrained")
    loss_ax, lr_ax, dev_ax = fig.subplots(3, 1, sharex=True)
    for color, (name, records) in enumerate(runs):
        style = {"color": f"C{color}"}
        train = [r for r in records if "loss" in r]
        dev = [r for r in records if "dev_wer" in r]
        steps = [r["step"] for r in train]
        loss_ax.plot(steps, [r["loss"] for r in train], label=name, **style)
        lr_ax.plot(steps, [r["lr"] for r in train], **style)
        dev_ax.plot([r["step"] for r in dev], [100 * r["dev_wer"] for r in dev], marker="o", **style)
        dev_ax.plot([r["step"] for r in dev], [100 * r["dev_cer"] for r in dev], marker="o", linestyle="--",
                    **style)
    loss_ax.set(ylabel="CTC loss per character", yscale="log", title="training loss (mean over each log window)")
    lr_ax.set(ylabel="learning rate")
    dev_ax.set(ylabel="dev error (%)", xlabel="optimizer step", title="dev WER (solid) and CER (dashed)")
    loss_ax.legend(loc="upper right")
    if not any("dev_wer" in r for _, records in runs for r in records):
        dev_ax.text(0.5, 0.5, "no dev evaluation logged", ha="center", va="center", transform=dev_ax.transAxes)
    for ax in (loss_ax, lr_ax, dev_ax):
        ax.grid(alpha=0.3)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out)
