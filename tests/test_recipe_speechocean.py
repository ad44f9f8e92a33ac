"""recipes/speechocean762/run.sh, stages 1-3, on a generated corpus in the original layout,
and its --dry-run listing of what stage 0 fetches.

The recipe's run.sh and conf/ are copied so that its data/ and exp/ land in tmp_path. A tiny conf
keeps two epoch checkpoints, so stage 3 averages them and keeps as exp/tiny/final.pt
whichever of best.pt and the average has the lower greedy dev WER.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_speechocean import write_corpus

from asr.corpora.lmtext import read_pinned

RECIPE = Path(__file__).parents[1] / "recipes/speechocean762"
TINY_CONF = """\
train_manifest: data/train.jsonl
dev_manifest: data/dev_report.jsonl
model:
  hidden_size: 16
  num_layers: 1
train:
  epochs: 2
  max_batch_seconds: 5
  num_workers: 0
  keep_last: 2
"""


@pytest.mark.slow
def test_run_sh_prepares_trains_and_keeps_the_better_of_best_and_average(tmp_path):
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    shutil.copy(RECIPE / "run.sh", recipe)
    shutil.copytree(RECIPE / "conf", recipe / "conf")
    (recipe / "conf/tiny.yaml").write_text(TINY_CONF)
    corpus = write_corpus(tmp_path / "corpus")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = ["bash", str(recipe / "run.sh"), "--data-dir", str(corpus), "--conf", "tiny",
               "--stage", "1", "--stop-stage", "3", "--synth-count", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    exp = recipe / "exp/tiny"
    assert sorted(p.name for p in exp.glob("epoch-*.pt")) == ["epoch-1.pt", "epoch-2.pt"]
    best_wer = json.loads((exp / "decode/wer-summary-dev_report.json").read_text())["wer"]
    avg_wer = json.loads((exp / "decode-avg-last-2/wer-summary-dev_report.json").read_text())["wer"]
    final = torch.load(exp / "final.pt", map_location="cpu", weights_only=False)
    assert ("averaged_from" in final) == (avg_wer < best_wer)
    assert "final.pt = " in result.stdout


def test_dry_run_lists_what_stage_0_would_fetch_and_fetches_nothing(tmp_path):
    """From a clean checkout: the corpus archive and every pinned LM text file; with copies of
    both given, nothing."""
    shutil.copy(RECIPE / "run.sh", tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = ["bash", str(tmp_path / "run.sh"), "--dry-run"]
    result = subprocess.run([*run, "--text-mirror", "http://127.0.0.1:9/text"], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    urls = result.stdout.split()
    assert urls[0] == "https://www.openslr.org/resources/101/speechocean762.tar.gz"
    assert urls[1:] == [f"http://127.0.0.1:9/text/{p.path}" for p in read_pinned()]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.sh"]  # no downloads/, nothing fetched
    given = subprocess.run([*run, "--data-dir", str(tmp_path), "--text-dir", str(tmp_path)], capture_output=True,
                           text=True, env=env)
    assert given.returncode == 0 and given.stdout == "", given.stderr
