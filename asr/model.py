"""The acoustic model: frame stacking -> bidirectional LSTM -> linear -> log-softmax.

    features (batch, frames, mels)
      -> stack `subsample` consecutive frames   (batch, out_frames, mels * subsample)
      -> BiLSTM over packed sequences           (batch, out_frames, 2 * hidden_size)
      -> linear + log_softmax                   (batch, out_frames, vocab)

`out_frames = ceil(frames / subsample)`: the last partial group is zero-padded
(features are zero-mean, so padding is "average"), so no audio is dropped.
The model returns `(log_probs, output_lengths)` and nothing else: loss, decoding
and metrics live in their own modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


@dataclass
class ModelConfig:
    """Sizes of the network. `n_mels` must match FeatureConfig.n_mels; `vocab_size`
    is set from the tokenizer when the model is built."""

    n_mels: int = 80  # input mel bins (must equal features.n_mels)
    subsample: int = 3  # frames stacked per LSTM step: 10 ms -> 30 ms steps
    hidden_size: int = 256  # per direction
    num_layers: int = 3  # stacked BiLSTM layers
    dropout: float = 0.1  # between LSTM layers and before the output layer
    vocab_size: int = 29  # output classes; set from the tokenizer when the model is built

    @property
    def lstm_input_size(self) -> int:
        return self.n_mels * self.subsample


def output_lengths(frames: torch.Tensor, subsample: int) -> torch.Tensor:
    """Exact number of model outputs for `frames` input frames: ceil(frames / subsample)."""
    return torch.div(frames + subsample - 1, subsample, rounding_mode="floor")


class FrameStacking(nn.Module):
    """(batch, frames, mels) -> (batch, ceil(frames / k), mels * k)."""

    def __init__(self, subsample: int):
        super().__init__()
        self.subsample = subsample

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, frames, mels = x.shape
        # Zero each utterance's padding: its last partial group must not see the batch's padding.
        valid = torch.arange(frames, device=x.device) < lengths.to(x.device).unsqueeze(1)  # (batch, frames)
        x = x * valid.unsqueeze(2)
        pad = (-frames) % self.subsample
        x = F.pad(x, (0, 0, 0, pad))  # (batch, frames + pad, mels)
        x = x.reshape(batch, (frames + pad) // self.subsample, mels * self.subsample)
        return x, output_lengths(lengths, self.subsample)


class CTCModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.stack = FrameStacking(config.subsample)
        self.lstm = nn.LSTM(
            input_size=config.lstm_input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=True,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(2 * config.hidden_size, config.vocab_size)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features: (batch, frames, mels), lengths: (batch,) ->
        log_probs: (batch, out_frames, vocab), output_lengths: (batch,)."""
        x, out_lengths = self.stack(features, lengths)  # (batch, out_frames, mels * subsample)
        if bool((out_lengths == x.shape[1]).all()):
            # No padding (e.g. one utterance, or segments of equal length): the dense
            # LSTM call gives the same outputs and is about twice as fast as a packed one.
            x, _ = self.lstm(x)  # (batch, out_frames, 2H)
        else:
            packed = pack_padded_sequence(x, out_lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed, _ = self.lstm(packed)
            x, _ = pad_packed_sequence(packed, batch_first=True, total_length=x.shape[1])  # (batch, out_frames, 2H)
        logits = self.output(self.dropout(x))  # (batch, out_frames, vocab)
        return logits.float().log_softmax(dim=-1), out_lengths

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
