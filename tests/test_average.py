"""Checkpoint averaging: selection from metrics.jsonl, the mean of the weights, load_model on the result."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import save_checkpoint, tiny_model

from asr.average import average, select_checkpoints
from asr.checkpoint import CheckpointError, load_model, read_checkpoint
from asr.cli import main
from asr.model import ModelConfig
from asr.train import RunConfig, TrainConfig, run

DEV_WER = {1: 0.5, 2: 0.7, 3: 0.4}  # epoch -> dev WER at its end


@pytest.fixture
def exp_dir(tmp_path):
    """epoch-1..3.pt with different weights, and the metrics.jsonl a training run would log."""
    lines = []
    for epoch, wer in DEV_WER.items():
        save_checkpoint(tiny_model(epoch), tmp_path / f"epoch-{epoch}.pt")
        step = 10 * epoch
        lines += [{"step": step - 5, "epoch": epoch - 1, "dev_wer": 0.01},  # mid-epoch: no checkpoint there
                  {"step": step, "epoch": epoch, "dev_wer": wer},
                  {"step": step, "epoch": epoch, "checkpoint": f"epoch-{epoch}.pt"}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return tmp_path


def mean_weights(*epochs: int) -> dict[str, torch.Tensor]:
    states = [tiny_model(e).state_dict() for e in epochs]
    return {k: sum(s[k] for s in states) / len(states) for k in states[0]}


@pytest.mark.parametrize("how, epochs", [({"last": 2}, (2, 3)), ({"best": 2}, (3, 1)), ({"last": 3}, (1, 2, 3))])
def test_average_is_the_mean_of_the_selected_checkpoints_and_loads(exp_dir, how, epochs):
    assert [p.name for p in select_checkpoints(exp_dir, **how)] == [f"epoch-{e}.pt" for e in epochs]
    out = average(exp_dir, **how)
    kind, n = next(iter(how.items()))
    assert out == exp_dir / f"avg-{kind}-{n}.pt"
    loaded = load_model(out)
    expected = mean_weights(*epochs)
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-6, atol=1e-7)
    assert read_checkpoint(out)["averaged_from"] == [f"epoch-{e}.pt" for e in epochs]
    log_probs, lengths = loaded.model(torch.zeros(1, 12, 80), torch.tensor([12]))  # (1, 4, vocab)
    assert log_probs.shape == (1, 4, len(loaded.tokenizer)) and lengths.tolist() == [4]


def test_deleted_checkpoints_are_not_selected(exp_dir):
    (exp_dir / "epoch-3.pt").unlink()
    assert [p.name for p in select_checkpoints(exp_dir, best=1)] == ["epoch-1.pt"]
    with pytest.raises(CheckpointError, match="asked for 3 epoch checkpoints, found 2"):
        select_checkpoints(exp_dir, last=3)


def test_checkpoints_of_different_models_are_refused(exp_dir):
    save_checkpoint(tiny_model(0, hidden_size=6), exp_dir / "epoch-3.pt")
    with pytest.raises(CheckpointError, match="epoch-3.pt: model_config differs"):
        average(exp_dir, last=2)


def test_best_needs_dev_wer_and_errors_are_one_line(exp_dir, capsys):
    lines = (exp_dir / "metrics.jsonl").read_text().splitlines()
    (exp_dir / "metrics.jsonl").write_text("".join(line + "\n" for line in lines if "dev_wer" not in line))
    assert main(["average", "--exp-dir", str(exp_dir), "--best", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "have a dev WER" in err
    assert not list(exp_dir.glob("avg-*"))


@pytest.mark.slow
def test_training_keeps_the_last_epochs_for_averaging(speech_manifest, tmp_path, capsys):
    config = RunConfig(train_manifest=str(speech_manifest), dev_manifest=str(speech_manifest),
                       model=ModelConfig(subsample=4, hidden_size=16, num_layers=1),
                       train=TrainConfig(epochs=3, max_batch_seconds=6.0, warmup_steps=2, num_workers=0,
                                         device="cpu", keep_last=2))
    run(config, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("epoch-*.pt")) == ["epoch-2.pt", "epoch-3.pt"]
    capsys.readouterr()
    assert main(["average", "--exp-dir", str(tmp_path), "--best", "2"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'avg-best-2.pt'}"
    assert sorted(read_checkpoint(tmp_path / "avg-best-2.pt")["averaged_from"]) == ["epoch-2.pt", "epoch-3.pt"]
    load_model(tmp_path / "avg-best-2.pt")
