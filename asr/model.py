"""The acoustic model: frame stacking -> bidirectional LSTM -> linear -> log-softmax.

    features (batch, frames, mels)
      -> stack `subsample` consecutive frames   (batch, out_frames, mels * subsample)
      -> BiLSTM, padding-exact                  (batch, out_frames, 2 * hidden_size)
      -> linear + log_softmax                   (batch, out_frames, vocab)

`out_frames = ceil(frames / subsample)`: the last partial group is zero-padded
(features are zero-mean, so padding is "average"), so no audio is dropped.
The model returns `(log_probs, output_lengths)` and nothing else: loss, decoding
and metrics live in their own modules.

The BiLSTM computes exactly what `nn.LSTM` computes on a PackedSequence (each
utterance's outputs depend on its own frames only), with dense calls that run in
oneDNN's fused kernel (`dense_bilstm`; measured against packed in docs/design.md).
The weights stay in one bidirectional `nn.LSTM`, so the parameter names
(`lstm.weight_ih_l0_reverse`, ...) and every checkpoint are unchanged.
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


def dense_bilstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """What `lstm` (bidirectional, batch_first) computes on `pack_padded_sequence(x, lengths)`,
    padded back with zeros, from dense single-direction calls that take the fused kernel.

    x: (batch, frames, input_size), lengths: (batch,) -> (batch, frames, 2 * hidden_size).
    Per layer, the forward direction runs over the padded batch as it is: padding at the end
    cannot reach the outputs before it. The backward direction runs over each utterance
    reversed within its own length (its padding stays at the end), and its outputs are put
    back in time order. Between layers comes nn.LSTM's dropout, and padding positions hold
    garbage that never reaches a valid position; the last layer's are set to zero.
    """
    batch, frames, _ = x.shape
    steps = torch.arange(frames, device=x.device)  # (frames,)
    lengths = lengths.to(x.device).unsqueeze(1)  # (batch, 1)
    valid = steps < lengths  # (batch, frames)
    # Time index of each step of the reversed utterances; its own inverse, so it also undoes the reversal.
    reverse = torch.where(valid, lengths - 1 - steps, steps)  # (batch, frames)

    def flip(seq: torch.Tensor) -> torch.Tensor:  # (batch, frames, C) -> same shape, each utterance reversed
        return seq.gather(1, reverse.unsqueeze(2).expand(-1, -1, seq.shape[2]))

    zeros = x.new_zeros(1, batch, lstm.hidden_size)  # (directions * layers = 1, batch, hidden): initial h and c
    for layer in range(lstm.num_layers):
        if layer > 0:
            x = F.dropout(x, lstm.dropout, lstm.training)
        outputs = []
        for suffix, seq in (("", x), ("_reverse", flip(x))):
            weights = [getattr(lstm, f"{name}_l{layer}{suffix}")
                       for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            out = torch._VF.lstm(seq, (zeros, zeros), weights, True, 1, 0.0, lstm.training, False, True)[0]
            outputs.append(out)  # (batch, frames, hidden)
        x = torch.cat([outputs[0], flip(outputs[1])], dim=2)  # (batch, frames, 2 * hidden)
    return x * valid.unsqueeze(2)


def packed_bilstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`lstm` over `pack_padded_sequence(x, lengths)`, padded back with zeros.
    x: (batch, frames, input_size), lengths: (batch,) -> (batch, frames, 2 * hidden_size)."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    packed, _ = lstm(packed)
    return pad_packed_sequence(packed, batch_first=True, total_length=x.shape[1])[0]


class CTCModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.stack = FrameStacking(config.subsample)
        self.lstm = nn.LSTM(  # the weights, under nn.LSTM's names; `forward` picks how to run them
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
            # No padding (e.g. one utterance, or equal transcription windows): one dense
            # bidirectional call is exact, and ~5% faster than two single-direction ones.
            x, _ = self.lstm(x)  # (batch, out_frames, 2H)
        elif x.is_cuda:
            # cuDNN runs packed sequences in its fused kernel; single-direction calls would
            # make it copy the weights out of nn.LSTM's flat buffer at every call.
            x = packed_bilstm(self.lstm, x, out_lengths)  # (batch, out_frames, 2H)
        else:
            x = dense_bilstm(self.lstm, x, out_lengths)  # (batch, out_frames, 2H)
        logits = self.output(self.dropout(x))  # (batch, out_frames, vocab)
        return logits.float().log_softmax(dim=-1), out_lengths

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
