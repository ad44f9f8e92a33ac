"""The acoustic model: a front end -> bidirectional LSTM -> linear -> log-softmax.

    features (batch, frames, mels)
      -> front end, `subsample` frames a step   (batch, out_frames, lstm_input_size)
           "stack": `subsample` consecutive frames side by side (mels * subsample)
           "conv":  log2(subsample) 3x3 convolutions of stride 2 over (time, mel), each + ReLU
                    (conv_channels * ceil(mels / subsample)), as Deep Speech 2 and ESPnet's VGG-BLSTM
      -> BiLSTM, padding-exact                  (batch, out_frames, 2 * hidden_size)
      -> linear + log_softmax                   (batch, out_frames, vocab)

`out_frames = ceil(frames / subsample)` for both front ends: the last partial group is
zero-padded (features are zero-mean, so padding is "average"), so no audio is dropped.
Both are padding-exact too: each utterance's outputs depend on its own frames only.
The model returns `(log_probs, output_lengths)` and nothing else: loss, decoding
and metrics live in their own modules.

The BiLSTM computes exactly what `nn.LSTM` computes on a PackedSequence (each
utterance's outputs depend on its own frames only), with dense calls that run in
oneDNN's fused kernel (`dense_bilstm`; measured against packed in docs/design.md).
The weights stay in one bidirectional `nn.LSTM`, so the parameter names
(`lstm.weight_ih_l0_reverse`, ...) and every checkpoint are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.configs import ModelConfig


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


class ConvSubsampling(nn.Module):
    """(batch, frames, mels) -> (batch, ceil(frames / 2^n), channels * ceil(mels / 2^n)) through
    n = `layers` 3x3 convolutions of stride 2 in time and frequency, each followed by ReLU.

    Padding 1 on every side makes each layer's output length ceil(length / 2), and the
    frames past each utterance's length are zeroed before every layer, so an utterance's
    outputs are what it gets alone (where the convolution's own zero padding stands there).
    """

    def __init__(self, layers: int, channels: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(1 if i == 0 else channels, channels, kernel_size=3, stride=2, padding=1)
                                   for i in range(layers))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.unsqueeze(1)  # (batch, 1, frames, mels)
        lengths = lengths.to(x.device)
        for conv in self.convs:
            valid = torch.arange(x.shape[2], device=x.device) < lengths.unsqueeze(1)  # (batch, frames)
            x = torch.relu(conv(x * valid[:, None, :, None]))  # (batch, channels, ceil(frames / 2), ceil(mels / 2))
            lengths = output_lengths(lengths, 2)
        batch, channels, frames, mels = x.shape
        return x.permute(0, 2, 1, 3).reshape(batch, frames, channels * mels), lengths


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
        config.check()
        self.config = config
        self.front_end = (ConvSubsampling(config.conv_layers, config.conv_channels) if config.front_end == "conv"
                          else FrameStacking(config.subsample))
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
        x, out_lengths = self.front_end(features, lengths)  # (batch, out_frames, lstm_input_size)
        if bool((out_lengths == x.shape[1]).all()):
            # No padding (e.g. one utterance, or equal transcription windows): one dense
            # bidirectional call is exact, and ~5% faster than two single-direction ones.
            x, _ = self.lstm(x)  # (batch, out_frames, 2H)
        elif x.is_cuda or not isinstance(self.lstm, nn.LSTM):
            # cuDNN runs packed sequences in its fused kernel; single-direction calls would
            # make it copy the weights out of nn.LSTM's flat buffer at every call. An int8
            # LSTM (quantize_int8) has no single-direction weights to call, only this path.
            x = packed_bilstm(self.lstm, x, out_lengths)  # (batch, out_frames, 2H)
        else:
            x = dense_bilstm(self.lstm, x, out_lengths)  # (batch, out_frames, 2H)
        logits = self.output(self.dropout(x))  # (batch, out_frames, vocab)
        return logits.float().log_softmax(dim=-1), out_lengths

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def quantize_int8(model: CTCModel) -> CTCModel:
    """The model (in eval mode) with its LSTM and output layer dynamically quantized: int8 weights,
    activations quantized per call, for CPU inference (`--precision int8`). Changes the model in place."""
    import warnings

    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao on every call
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8, inplace=True)
