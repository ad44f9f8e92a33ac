"""asr.model: the output-length formula, frame stacking, and padding independence."""

from __future__ import annotations

import pytest
import torch

from asr.model import CTCModel, FrameStacking, ModelConfig, output_lengths

N_MELS = 4  # tiny inputs keep the 1,500-forward length sweep to a few seconds


def _tiny_model(subsample: int, num_layers: int = 2) -> CTCModel:
    torch.manual_seed(0)
    config = ModelConfig(n_mels=N_MELS, subsample=subsample, hidden_size=8, num_layers=num_layers, vocab_size=7)
    return CTCModel(config).eval()


@pytest.mark.parametrize("subsample", [1, 2, 3, 4, 5])
def test_output_length_formula_matches_the_actual_output_count(subsample):
    model = _tiny_model(subsample, num_layers=1)  # ~1 s per factor for the 300 forwards
    lengths = torch.arange(1, 301)
    predicted = output_lengths(lengths, subsample)
    with torch.no_grad():
        for frames, expected in zip(lengths.tolist(), predicted.tolist()):
            # One output per group of `subsample` frames, the last group possibly partial.
            assert expected == len(range(0, frames, subsample))
            log_probs, out_lengths = model(torch.randn(1, frames, N_MELS), torch.tensor([frames]))
            assert log_probs.shape == (1, expected, 7), frames
            assert out_lengths.tolist() == [expected]


@pytest.mark.parametrize("subsample", [1, 3, 4])
def test_mixed_length_batch_gives_each_utterance_its_own_output(subsample):
    """Outputs in a padded batch equal the outputs of each utterance run alone,
    whatever the padding holds (packed sequences + masking before stacking)."""
    model = _tiny_model(subsample)
    generator = torch.Generator().manual_seed(0)
    lengths = [37, 1, 100, 64, 2, 99]
    singles = [torch.randn(n, N_MELS, generator=generator) for n in lengths]
    frames = max(lengths)
    batch = torch.randn(len(lengths), frames, N_MELS, generator=generator) * 100  # garbage padding
    for b, utt in enumerate(singles):
        batch[b, : len(utt)] = utt
    with torch.no_grad():
        log_probs, out_lengths = model(batch, torch.tensor(lengths))
        assert log_probs.shape[:2] == (len(lengths), output_lengths(torch.tensor(frames), subsample))
        assert out_lengths.tolist() == output_lengths(torch.tensor(lengths), subsample).tolist()
        for b, utt in enumerate(singles):
            alone, _ = model(utt.unsqueeze(0), torch.tensor([len(utt)]))
            valid = out_lengths[b]
            torch.testing.assert_close(log_probs[b, :valid], alone[0], atol=1e-5, rtol=1e-5)


def test_frame_stacking_concatenates_consecutive_frames_and_zero_pads_the_last_group():
    x = torch.arange(2 * 7 * 2, dtype=torch.float).reshape(2, 7, 2)  # (batch, frames, mels)
    stacked, lengths = FrameStacking(3)(x, torch.tensor([7, 5]))
    assert stacked.shape == (2, 3, 6)
    assert lengths.tolist() == [3, 2]
    assert stacked[0, 1].tolist() == x[0, 3:6].flatten().tolist()
    assert stacked[0, 2].tolist() == [*x[0, 6].tolist(), 0, 0, 0, 0]
    assert stacked[1, 1].tolist() == [*x[1, 3:5].flatten().tolist(), 0, 0]  # frames 5, 6 are padding


def test_model_returns_log_probabilities():
    model = _tiny_model(3)
    with torch.no_grad():
        log_probs, _ = model(torch.randn(2, 30, N_MELS), torch.tensor([30, 20]))
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 10))


def test_lstm_input_size_comes_from_the_config():
    config = ModelConfig(n_mels=40, subsample=4, hidden_size=16, num_layers=1)
    model = CTCModel(config)
    assert model.lstm.input_size == 160
    assert model.output.in_features == 32
