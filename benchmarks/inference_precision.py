"""Inference precision on the CPU: speed and accuracy of the network in float32, bfloat16,
int8 (dynamic quantization) and onnxruntime, on the same utterances in one run.

    python -m benchmarks.inference_precision [--model CKPT] [--manifest dev_report.jsonl]
        [--threads 2] [--batch 8] [--limit N] [--onnx]

1. Features of every utterance of the manifest (default: speechocean762's dev_report, 480
   utterances, 34 min) are computed once; the timed part is the network alone, run as
   `asr transcribe` runs it: `--batch` consecutive utterances padded into one call.
2. Variants, each over all utterances:
   * float32     the model as it is (dense BiLSTM, padding-exact);
   * bfloat16    the same under torch.autocast(cpu, bfloat16) (`--precision bfloat16`), only
                 where the CPU has BF16 instructions (asr.precision.cpu_bf16_flags);
   * int8        torch.ao.quantization.quantize_dynamic of the LSTM and the output layer
                 (int8 weights, activations quantized per call; `--precision int8`,
                 asr.model.quantize_int8), run over packed sequences (the quantized LSTM has
                 no dense single-direction path);
   * onnxruntime (--onnx, needs the `onnx` package to export) the model exported with torch.onnx
                 (no padding path: one utterance per call), against float32 one utterance per call.
3. Speed: network seconds / audio seconds (RTF) on the first `--timed-minutes` of audio, in
   `--rounds` rounds that each time every variant once, in turn (the load of a shared machine
   drifts; interleaving spreads it over all variants): the median RTF, and the median over
   rounds of the speed-up against float32 (the "1 per call" variants: against float32 1 per call).
   Accuracy, over all utterances: greedy WER and the default decoding's (the model's stored
   options) WER against the references, and how many transcripts differ from float32's.
The default (asr.precision.pick_inference_precision) is bfloat16 where the CPU has BF16
instructions: the fastest variant whose WER is within 0.3 points of float32's and whose
transcripts mostly stay float32's (int8 is offered by flag).
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

from asr.audio import load_audio
from asr.checkpoint import load_model
from asr.data.manifest import read_manifest
from asr.decode import GreedyDecoder, make_decoder
from asr.features import LogMel
from asr.metrics import ErrorCounts, align_words
from asr.model import quantize_int8
from asr.precision import cpu_bf16_flags
from asr.text import normalize_text
from benchmarks.common import RECIPE, default_model, machine_line

DEV_REPORT = RECIPE / "data" / "dev_report.jsonl"


def batches(features: list[torch.Tensor], size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive utterances `size` at a time: (features (batch, frames, mels), lengths (batch,))."""
    return [(pad_sequence(features[i: i + size], batch_first=True),
             torch.tensor([f.shape[0] for f in features[i: i + size]])) for i in range(0, len(features), size)]


def onnx_forward(model, threads: int):
    """A forward function running the model exported to ONNX in onnxruntime (one utterance per call)."""
    import onnxruntime

    class Unpadded(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = copy.deepcopy(model)  # the exporter leaves the model it traces altered (slower, other outputs)

        def forward(self, features):  # (1, frames, mels) -> (1, out_frames, vocab)
            return self.model(features, torch.full((features.shape[0],), features.shape[1]))[0]

    buffer = io.BytesIO()
    torch.onnx.export(Unpadded(), (torch.zeros(1, 300, model.config.n_mels),), buffer, dynamo=False,
                      input_names=["features"], output_names=["log_probs"], opset_version=17,
                      dynamic_axes={"features": {1: "frames"}, "log_probs": {1: "out_frames"}})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def forward(features, lengths):
        log_probs = session.run(None, {"features": features.numpy()})[0]
        return torch.from_numpy(log_probs), -(-lengths // model.config.subsample)

    return forward


def run(forward, inputs) -> tuple[float, list[tuple[torch.Tensor, torch.Tensor]]]:
    """(seconds, outputs) of one pass of `forward` over `inputs`."""
    with torch.inference_mode():
        start = time.perf_counter()
        outputs = [forward(features, lengths) for features, lengths in inputs]
        return time.perf_counter() - start, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="default: the recipe's best.pt, else the bundled model")
    parser.add_argument("--manifest", default=str(DEV_REPORT))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="utterances per call (asr transcribe's default: 8)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed rounds; each times every variant once, in turn (medians are reported)")
    parser.add_argument("--timed-minutes", type=float, default=5.0, help="audio of the timed passes (the first N min)")
    parser.add_argument("--limit", type=int, help="the first N utterances only")
    parser.add_argument("--onnx", action="store_true", help="also onnxruntime (needs the onnx package)")
    args = parser.parse_args()
    args.model = args.model or default_model()

    torch.set_num_threads(args.threads)
    print(machine_line())
    loaded = load_model(args.model)
    model = loaded.model
    utterances = read_manifest(args.manifest)[: args.limit]
    logmel = LogMel(loaded.features)
    with torch.inference_mode():
        features = [logmel(torch.from_numpy(load_audio(u.audio_path, u.offset, u.duration))) for u in utterances]
    seconds = sum(u.duration for u in utterances)
    print(f"model: {args.model}; {len(utterances)} utterances, {seconds / 60:.1f} min; {args.threads} threads; "
          f"batches of {args.batch}; BF16 instructions: {', '.join(cpu_bf16_flags()) or 'none'}")

    def bfloat16(features, lengths):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(features, lengths)

    variants = [("float32", model, args.batch)]
    if cpu_bf16_flags():
        variants.append(("bfloat16", bfloat16, args.batch))
    variants.append(("int8 dynamic", quantize_int8(copy.deepcopy(model)), args.batch))
    if args.onnx:
        variants += [("float32, 1 per call", model, 1),
                     ("onnxruntime, 1 per call", onnx_forward(model, args.threads), 1)]

    greedy, default = GreedyDecoder(loaded.tokenizer), make_decoder(loaded.decoding, loaded.tokenizer)
    references = [normalize_text(u.text) for u in utterances]
    timed_count = next((i + 1 for i in range(len(utterances))
                        if sum(u.duration for u in utterances[: i + 1]) >= args.timed_minutes * 60), len(utterances))
    timed_seconds = sum(u.duration for u in utterances[:timed_count])
    times = {name: [] for name, _, _ in variants}  # load on a shared machine drifts: rounds interleave the variants
    for _ in range(args.rounds):
        for name, forward, batch in variants:
            times[name].append(run(forward, batches(features[:timed_count], batch))[0] / timed_seconds)
    rows, baseline = [], {}
    for name, forward, batch in variants:
        outputs = run(forward, batches(features, batch))[1]
        row = {"name": name, "rtf": statistics.median(times[name]), "batch": batch}
        for kind, decoder in (("greedy", greedy), ("default", default)):
            texts = [hyp.text for log_probs, lengths in outputs for hyp in decoder.decode(log_probs, lengths)]
            errors = sum((align_words(ref, hyp)[0] for ref, hyp in zip(references, texts)),
                         start=ErrorCounts())
            baseline.setdefault(kind, texts)
            row[kind] = (errors.rate, sum(a != b for a, b in zip(texts, baseline[kind])))
        rows.append(row)
        print(f"  {name}: RTF {row['rtf']:.4f}", file=sys.stderr, flush=True)

    print(f"timed: the first {timed_count} utterances ({timed_seconds / 60:.1f} min), {args.rounds} rounds, "
          f"median RTF; speed-up: median over rounds of float32's time / the variant's time in the same round")
    print(f"\n| variant | network RTF | speed-up vs float32 | greedy WER | differ from float32 | "
          f"default decoding WER ({loaded.decoding.decoder}) | differ from float32 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        base = "float32" if row["batch"] == args.batch else "float32, 1 per call"
        speedup = statistics.median(a / b for a, b in zip(times[base], times[row["name"]]))
        (g_wer, g_diff), (d_wer, d_diff) = row["greedy"], row["default"]
        print(f"| {row['name']} | {row['rtf']:.4f} | {speedup:.2f}x | {g_wer:.2%} | {g_diff} | "
              f"{d_wer:.2%} | {d_diff} |")

if __name__ == "__main__":
    main()
