"""asr.precision: BF16 detection from /proc/cpuinfo, what "auto" picks on each device, one
bfloat16 training step against the float32 step from the same weights and batch, and the
transcripts of each inference precision against float32's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import tiny_model
from test_pretrained import real_dev_utterances

from asr.checkpoint import load_model
from asr.config import ConfigError
from asr.decode import make_decoder
from asr.metrics import ErrorCounts, char_errors
from asr.precision import INFERENCE_PRECISIONS, cpu_bf16_flags, pick_inference_precision, pick_precision
from asr.pretrained import default_model_path
from asr.transcribe import transcribe

CPU = torch.device("cpu")
FLAGS_LINE = "flags\t\t: fpu vme sse2 avx2 avx512f {extra}\n"


def _cpuinfo(tmp_path, extra: str):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: Some CPU\n" + FLAGS_LINE.format(extra=extra))
    return path


@pytest.mark.parametrize("extra, expected", [("", ()), ("avx512_bf16", ("avx512_bf16",)),
                                             ("amx_tile amx_bf16 avx512_bf16", ("amx_bf16", "avx512_bf16"))])
def test_bf16_flags_are_read_from_cpuinfo(tmp_path, extra, expected):
    assert cpu_bf16_flags(_cpuinfo(tmp_path, extra)) == expected


def test_no_cpuinfo_means_no_bf16(tmp_path):
    assert cpu_bf16_flags(tmp_path / "missing") == ()


def test_auto_follows_the_device_and_the_cpu(monkeypatch):
    assert pick_precision("auto", torch.device("cuda", 0)).name == "float16"
    monkeypatch.setattr("asr.precision.cpu_bf16_flags", lambda: ("amx_bf16",))
    chosen = pick_precision("auto", CPU)
    assert (chosen.name, chosen.reason) == ("bfloat16", "the CPU has amx_bf16")
    monkeypatch.setattr("asr.precision.cpu_bf16_flags", lambda: ())
    assert pick_precision("auto", CPU).name == "float32"
    assert pick_precision("bfloat16", CPU).name == "bfloat16"  # forced, whatever the CPU has


@pytest.mark.parametrize("setting, message", [("float16", "needs a CUDA device"), ("half", "must be one of")])
def test_impossible_precisions_are_config_errors(setting, message):
    with pytest.raises(ConfigError, match=message):
        pick_precision(setting, CPU)


def _gradients(precision: str) -> tuple[float, dict[str, torch.Tensor]]:
    """CTC loss and gradients of one step of a small model on a fixed random batch."""
    model = tiny_model(seed=0, hidden_size=64, num_layers=2, subsample=4).train()
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(4, 200, model.config.n_mels, generator=generator)  # (batch, frames, mels)
    lengths = torch.tensor([200, 180, 150, 120])
    targets = torch.randint(1, model.config.vocab_size, (4, 20), generator=generator)
    torch.manual_seed(0)  # the same dropout masks in both precisions
    with pick_precision(precision, CPU).autocast():
        log_probs, out_lengths = model(features, lengths)
    assert log_probs.dtype == torch.float32  # the loss always sees float32
    loss = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, out_lengths, torch.full((4,), 20))
    loss.backward()
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32
    return loss.item(), {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.skipif(not cpu_bf16_flags(), reason="this CPU has no BF16 instructions (amx_bf16, avx512_bf16)")
def test_a_bfloat16_step_gives_nearly_the_float32_gradients():
    loss32, grads32 = _gradients("float32")
    loss16, grads16 = _gradients("bfloat16")
    assert loss16 == pytest.approx(loss32, rel=0.02)
    assert any(not torch.equal(grads32[name], grads16[name]) for name in grads32), "bfloat16 was not used"
    for name, grad in grads32.items():
        cosine = torch.nn.functional.cosine_similarity(grad.flatten(), grads16[name].flatten(), dim=0)
        assert cosine > 0.99, name
        assert (grads16[name].norm() / grad.norm()).item() == pytest.approx(1.0, abs=0.05), name


def test_inference_auto_is_bfloat16_only_on_a_cpu_with_bf16_instructions(monkeypatch):
    monkeypatch.setattr("asr.precision.cpu_bf16_flags", lambda: ("avx512_bf16",))
    assert pick_inference_precision("auto", CPU).name == "bfloat16"
    assert pick_inference_precision("auto", torch.device("cuda", 0)).name == "float32"  # not measured there
    assert pick_inference_precision("float32", CPU).name == "float32"
    monkeypatch.setattr("asr.precision.cpu_bf16_flags", lambda: ())
    assert pick_inference_precision("auto", CPU).name == "float32"
    with pytest.raises(ConfigError, match="--precision must be one of auto, float32, bfloat16, int8"):
        pick_inference_precision("int4", CPU)
    with pytest.raises(ConfigError, match="int8 runs on the CPU only"):
        pick_inference_precision("int8", torch.device("cuda", 0))


def _recordings(speech_dir) -> list:
    """A few real speechocean762 dev utterances where $SPEECHOCEAN762 (or the shared copy) has them,
    else the synthesized sentences."""
    corpus = Path(os.environ.get("SPEECHOCEAN762", Path(__file__).resolve().parents[2] / "shared/data/speechocean762"))
    if (corpus / "dev" / "wav.scp").is_file():
        return [path for path, _ in real_dev_utterances(corpus)]
    return sorted(speech_dir.glob("*.wav"))


@pytest.mark.parametrize("precision", INFERENCE_PRECISIONS[1:])
def test_each_inference_precision_transcribes_as_float32_does(precision, speech_dir):
    """The bundled model, its default decoding: the transcripts of each precision offered differ from
    float32's in at most 3% of their characters (bfloat16 rounds activations and int8 the weights,
    so a letter may change), and int8 really ran quantized."""
    if precision == "bfloat16" and not cpu_bf16_flags():
        pytest.skip("this CPU has no BF16 instructions (amx_bf16, avx512_bf16): bfloat16 would be emulated, "
                    "and auto does not pick it")
    recordings = _recordings(speech_dir)
    float32 = load_model(default_model_path(), precision="float32")
    other = load_model(default_model_path(), precision=precision)
    assert other.precision.name == precision
    assert (precision == "int8") == (type(other.model.lstm) is not torch.nn.LSTM)
    decoder = make_decoder(float32.decoding, float32.tokenizer)
    expected = [transcribe(float32, path, decoder).text for path in recordings]
    got = [transcribe(other, path, decoder).text for path in recordings]
    differences = sum((char_errors(a, b) for a, b in zip(expected, got)), start=ErrorCounts())
    assert sum(len(text) for text in expected) > 50  # the model said something to compare
    print(f"{precision}: {differences.rate:.2%} of float32's characters differ")
    assert differences.rate <= 0.03, list(zip(expected, got))
