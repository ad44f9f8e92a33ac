"""asr.model: the output-length formula, both front ends (frame stacking, strided convolutions),
padding independence, and the dense BiLSTM against a packed nn.LSTM with the same weights
(outputs, gradients, bundled model)."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch
from conftest import synthesize
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

from asr.checkpoint import load_model, make_checkpoint, read_checkpoint
from asr.config import ConfigError
from asr.decode import GreedyDecoder
from asr.features import FeatureConfig, LogMel
from asr.model import ConvSubsampling, CTCModel, FrameStacking, ModelConfig, output_lengths
from asr.pretrained import default_model_path
from asr.text import BLANK, SPACE, CharTokenizer

N_MELS = 4  # tiny inputs keep the 1,500-forward length sweep to a few seconds


def _tiny_model(subsample: int, num_layers: int = 2, front_end: str = "stack") -> CTCModel:
    torch.manual_seed(0)
    config = ModelConfig(n_mels=N_MELS, subsample=subsample, hidden_size=8, num_layers=num_layers, vocab_size=7,
                         front_end=front_end, conv_channels=3)
    return CTCModel(config).eval()


@pytest.mark.parametrize("front_end, subsample", [("stack", 1), ("stack", 2), ("stack", 3), ("stack", 4),
                                                  ("stack", 5), ("conv", 2), ("conv", 4), ("conv", 8)])
def test_output_length_formula_matches_the_actual_output_count(front_end, subsample):
    model = _tiny_model(subsample, num_layers=1, front_end=front_end)  # ~1 s per factor for the 300 forwards
    lengths = torch.arange(1, 301)
    predicted = output_lengths(lengths, subsample)
    with torch.no_grad():
        for frames, expected in zip(lengths.tolist(), predicted.tolist()):
            # One output per group of `subsample` frames, the last group possibly partial.
            assert expected == len(range(0, frames, subsample))
            log_probs, out_lengths = model(torch.randn(1, frames, N_MELS), torch.tensor([frames]))
            assert log_probs.shape == (1, expected, 7), frames
            assert out_lengths.tolist() == [expected]


@pytest.mark.parametrize("front_end, subsample", [("stack", 1), ("stack", 3), ("stack", 4), ("conv", 2),
                                                  ("conv", 4)])
def test_mixed_length_batch_gives_each_utterance_its_own_output(front_end, subsample):
    """Outputs in a padded batch equal the outputs of each utterance run alone,
    whatever the padding holds (masking before stacking or before each convolution)."""
    model = _tiny_model(subsample, front_end=front_end)
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


def test_conv_front_end_halves_time_and_frequency_per_layer():
    conv = ConvSubsampling(layers=2, channels=5)
    x, lengths = conv(torch.randn(2, 41, 80), torch.tensor([41, 9]))  # (batch, frames, mels)
    assert x.shape == (2, 11, 5 * 20)  # ceil(41 / 4) steps of channels x ceil(80 / 4)
    assert lengths.tolist() == [11, 3]
    assert (x >= 0).all()  # each convolution is followed by ReLU


def test_conv_front_end_sizes_come_from_the_config():
    config = ModelConfig(n_mels=80, subsample=4, front_end="conv", conv_channels=32, hidden_size=16, num_layers=1)
    assert CTCModel(config).lstm.input_size == 32 * 20
    assert ModelConfig(n_mels=81, subsample=8, front_end="conv", conv_channels=2).lstm_input_size == 2 * 11


@pytest.mark.parametrize("sizes, message", [({"front_end": "conv", "subsample": 3}, "power of 2"),
                                            ({"front_end": "conv", "subsample": 1}, "power of 2"),
                                            ({"hidden_size": 0}, "hidden_size"), ({"subsample": 0}, "subsample")])
def test_impossible_network_sizes_are_config_errors(sizes, message):
    with pytest.raises(ConfigError, match=message):
        CTCModel(ModelConfig(**sizes))


def test_a_checkpoint_without_front_end_fields_loads_with_frame_stacking(tmp_path):
    """Checkpoints written before the conv front end existed store no front_end: they stack frames."""
    model = _tiny_model(4)
    tokenizer = CharTokenizer([BLANK, SPACE, "a", "b", "c", "d", "e"])  # the tiny model's 7 classes
    checkpoint = make_checkpoint(model, FeatureConfig(n_mels=N_MELS), tokenizer)
    for key in ("front_end", "conv_channels"):
        del checkpoint["model_config"][key]
    torch.save(checkpoint, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert isinstance(loaded.model.front_end, FrameStacking)
    assert read_checkpoint(tmp_path / "old.pt")["model_state_dict"].keys() == model.state_dict().keys()
    features, lengths = torch.randn(1, 17, N_MELS), torch.tensor([17])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(features, lengths)[0], model(features, lengths)[0])


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


# --- the dense BiLSTM computes what a packed nn.LSTM computes ------------------------------------


def _packed_forward(model: CTCModel, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The model as it was before dense_bilstm: the same weights run by nn.LSTM over a PackedSequence."""
    x, out_lengths = model.front_end(features, lengths)  # (batch, out_frames, mels * subsample)
    packed = pack_padded_sequence(x, out_lengths, batch_first=True, enforce_sorted=False)
    x, _ = pad_packed_sequence(model.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
    return model.output(model.dropout(x)).log_softmax(dim=-1)  # (batch, out_frames, vocab)


def _outputs_and_gradients(forward, model, features, lengths, weights):
    """Output of `forward`, and the gradients of a random weighting of it w.r.t. every parameter and the input."""
    model.zero_grad()
    features = features.clone().requires_grad_()
    log_probs = forward(model, features, lengths)
    (log_probs * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return log_probs.detach(), grads, features.grad


@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_dense_bilstm_matches_a_packed_lstm_in_outputs_and_gradients(num_layers, mode):
    """Random batches with random lengths (1 frame to the longest; some with no padding at all).
    Train mode runs with dropout 0: with dropout the two draw different masks from the RNG
    (nn.LSTM masks the packed data), so only the dropout-free computation can be compared."""
    torch.manual_seed(1)
    config = ModelConfig(n_mels=N_MELS, subsample=2, hidden_size=16, num_layers=num_layers, dropout=0.0,
                         vocab_size=7)
    model = CTCModel(config).train(mode == "train")
    generator = torch.Generator().manual_seed(num_layers)
    for trial in range(6):
        batch = int(torch.randint(1, 7, (1,), generator=generator))
        frames = int(torch.randint(1, 60, (1,), generator=generator))
        lengths = torch.randint(1, frames + 1, (batch,), generator=generator)
        lengths[0] = frames
        if trial == 0:
            lengths[:] = frames  # no padding: the single bidirectional call
        features = torch.randn(batch, frames, N_MELS, generator=generator)
        features[torch.arange(frames) >= lengths.unsqueeze(1)] = 1e3  # padding must not leak anywhere
        out_frames = int(output_lengths(torch.tensor(frames), config.subsample))
        weights = torch.randn(batch, out_frames, config.vocab_size, generator=generator)

        dense = _outputs_and_gradients(lambda m, f, n: m(f, n)[0], model, features, lengths, weights)
        packed = _outputs_and_gradients(_packed_forward, model, features, lengths, weights)
        torch.testing.assert_close(dense[0], packed[0], atol=1e-5, rtol=1e-5)
        for name in packed[1]:
            torch.testing.assert_close(dense[1][name], packed[1][name], atol=1e-5, rtol=1e-5, msg=name)
        torch.testing.assert_close(dense[2], packed[2], atol=1e-5, rtol=1e-5)


def test_dense_bilstm_applies_dropout_between_layers_in_training_only():
    torch.manual_seed(0)
    model = CTCModel(ModelConfig(n_mels=N_MELS, subsample=1, hidden_size=8, num_layers=2, dropout=0.5,
                                 vocab_size=7))
    features, lengths = torch.randn(3, 20, N_MELS), torch.tensor([20, 12, 5])
    with torch.no_grad():
        first, second = model(features, lengths)[0], model(features, lengths)[0]
        assert not torch.allclose(first, second)  # a fresh mask on each call
        model.eval()
        torch.testing.assert_close(model(features, lengths)[0], _packed_forward(model, features, lengths))


@pytest.fixture(scope="module")
def bundled_batch(tmp_path_factory):
    """The bundled model and a padded batch of three generated sentences of different lengths."""
    folder = tmp_path_factory.mktemp("bundled")
    sentences = ["open the window please", "the cat sat on the mat today", "red door"]
    loaded = load_model(default_model_path())
    logmel = LogMel(loaded.features)
    feats = [logmel(torch.from_numpy(sf.read(synthesize(text, folder / f"{i}.wav"), dtype="float32")[0]))
             for i, text in enumerate(sentences)]  # each (frames, mels)
    return loaded, pad_sequence(feats, batch_first=True), torch.tensor([len(f) for f in feats])


def test_bundled_model_gives_the_packed_lstm_outputs_and_transcripts(bundled_batch):
    loaded, features, lengths = bundled_batch
    decoder = GreedyDecoder(loaded.tokenizer)
    with torch.no_grad():
        log_probs, out_lengths = loaded.model(features, lengths)  # (3, out_frames, vocab)
        reference = _packed_forward(loaded.model, features, lengths)
    torch.testing.assert_close(log_probs, reference, atol=1e-5, rtol=1e-5)
    texts = [h.text for h in decoder.decode(log_probs, out_lengths)]
    assert texts == [h.text for h in decoder.decode(reference, out_lengths)]
    assert any(texts), "the bundled model transcribed nothing"
