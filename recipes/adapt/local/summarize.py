"""Per-speaker before/after table from the wer-summary files of run.sh stage 1, with mean and spread.

    python local/summarize.py exp/speakers [TAG]   -> a Markdown table on stdout

Each exp/speakers/SPEAKER/ holds base/wer-summary-test.json, adaptedTAG/wer-summary-test.json
and secondsTAG (the wall time of `asr adapt`; TAG names a variant, "" the defaults). Means and
standard deviations are over speakers, of per-speaker rates.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def main() -> None:
    root, tag = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else ""
    rows = []
    for folder in sorted(p for p in root.iterdir() if (p / f"adapted{tag}" / "wer-summary-test.json").is_file()):
        base = load(folder / "base" / "wer-summary-test.json")
        adapted = load(folder / f"adapted{tag}" / "wer-summary-test.json")
        seconds_file = folder / f"seconds{tag}"
        seconds = float(seconds_file.read_text()) if seconds_file.is_file() else float("nan")
        rows.append((folder.name, base, adapted, seconds))
    print("| speaker | test words | WER before | WER after | CER before | CER after | adapt minutes |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, base, adapted, seconds in rows:
        print(f"| {name} | {base['words']} | {base['wer']:.1%} | {adapted['wer']:.1%} | {base['cer']:.1%} | "
              f"{adapted['cer']:.1%} | {seconds / 60:.1f} |")
    if len(rows) > 1:
        def stat(values):
            return f"{statistics.mean(values):.1%} ± {statistics.stdev(values):.1%}"
        gains = [b["wer"] - a["wer"] for _, b, a, _ in rows]
        print(f"| mean ± sd over {len(rows)} speakers | | {stat([b['wer'] for _, b, _, _ in rows])} | "
              f"{stat([a['wer'] for _, _, a, _ in rows])} | {stat([b['cer'] for _, b, _, _ in rows])} | "
              f"{stat([a['cer'] for _, _, a, _ in rows])} | {statistics.mean(r[3] for r in rows) / 60:.1f} |")
        print(f"\nWER gain (before - after) per speaker: mean {statistics.mean(gains):.1%}, "
              f"sd {statistics.stdev(gains):.1%}, better for {sum(g > 0 for g in gains)} of {len(rows)} speakers, "
              f"worse for {sum(g < 0 for g in gains)}.")


if __name__ == "__main__":
    main()
