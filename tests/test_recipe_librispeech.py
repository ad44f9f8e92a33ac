"""recipes/librispeech/run.sh, all five stages, against a generated mirror on disk.

The mirror (local/make_mini_mirror.py) holds train-clean-5 and dev-clean-2 in the
real layout with espeak-ng speech. Training uses torchrun with 2 processes and a
tiny model for a few steps; the test checks that every stage produced its files
and that the WER table reports what the decode stage measured.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_download import load_mirror_maker

RUN_SH = Path(__file__).parents[1] / "recipes/librispeech/run.sh"


@pytest.mark.slow
def test_run_sh_downloads_prepares_trains_decodes_and_reports(tmp_path):
    mirror = tmp_path / "mirror"
    load_mirror_maker().make_mirror(mirror, speakers=2, chapters=1, utterances=3)
    work = tmp_path / "work"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = ["bash", str(RUN_SH), "--conf", "mini", "--work-dir", str(work), "--nproc", "2", "--avg", "2",
               "--mirror", mirror.as_uri(), "--checksums", str(mirror / "md5sum.txt"), "--",
               "--model.hidden-size", "16", "--model.num-layers", "1", "--train.epochs", "2",
               "--train.max-batch-seconds", "5", "--train.num-workers", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    assert (work / "downloads/LibriSpeech/train-clean-5").is_dir()
    assert len((work / "data/train-mini.jsonl").read_text().splitlines()) == 6
    exp = work / "exp/mini"
    assert sorted(p.name for p in exp.glob("epoch-*.pt")) == ["epoch-1.pt", "epoch-2.pt"]
    assert (exp / "avg-last-2.pt").is_file()
    summary = json.loads((exp / "decode/wer-summary-dev-clean-2.json").read_text())
    assert summary["utterances"] == 6
    table = (exp / "decode/wer-table.txt").read_text()
    assert table.startswith("model: exp/mini/avg-last-2.pt\n")
    row = re.search(r"^dev-clean-2\s+([\d.]+)%\s+([\d.]+)%\s+6\s+(\d+)$", table, re.MULTILINE)
    assert row, table
    assert float(row[1]) == round(100 * summary["wer"], 2) and int(row[3]) == summary["words"]
    assert table in result.stdout
