"""Decode a manifest and score it: `asr evaluate --model CKPT --manifest M`.

    for ids, log_probs, lengths in iter_emissions(loaded, utterances): ...   # the model's output, by batch
    hyps = decode_utterances(loaded, utterances, decoder)                     # {utt id: Hypothesis}
    summary, rows = score(utterances, hyps)                                   # corpus WER/CER, per-utterance rows

`evaluate` does all three and writes, for a test set called NAME (the manifest's file
name without .jsonl):
    recogs-NAME.txt        one block per utterance: id, ref, hyp, errors, aligned
    wer-summary-NAME.json  one line: {"set", "wer", "cer", "utterances", ...}
and, when asked (`report=PATH`), one self-contained HTML page of the errors (asr.report).
Training's dev evaluation and `asr tune` use the same functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from asr.atomic import atomic_write, make_folder
from asr.checkpoint import LoadedModel
from asr.data.dataset import UtteranceDataset, collate, collate_readable, defer_stop_signals, loading
from asr.data.manifest import Utterance
from asr.data.sampler import DurationBatchSampler
from asr.decode import Decoder, Hypothesis
from asr.errors import AsrError
from asr.metrics import ErrorCounts, align_words, char_errors, format_alignment
from asr.report import MAX_UTTERANCES, ReportInput, write_html_report
from asr.text import normalize_text


class EvaluateError(AsrError):
    """Nothing to evaluate, or a report option out of range."""


@torch.no_grad()
def iter_emissions(loaded: LoadedModel, utterances: list[Utterance], device: torch.device | str = "cpu",
                   batch_seconds: float = 200.0, num_workers: int = 1,
                   on_unreadable: Callable[[str], None] | None = None
                   ) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
    """Run the model over `utterances` in duration-sorted batches (eval mode, restored after).
    Yields (utterance ids, log_probs (batch, frames, vocab), lengths (batch,)) per batch.
    An unreadable audio file raises AudioError, or with `on_unreadable` is passed over: its
    error goes to on_unreadable and its id is in no batch."""
    model = loaded.model
    was_training = model.training
    model.eval()
    dataset = UtteranceDataset(utterances, loaded.features, loaded.tokenizer, skip_unreadable=bool(on_unreadable))
    sampler = DurationBatchSampler([u.duration for u in utterances], batch_seconds, shuffle=False)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                                         collate_fn=collate_readable if on_unreadable else collate,
                                         worker_init_fn=defer_stop_signals)
    try:
        with loading(loader) as batches:
            for batch in batches:
                if on_unreadable:
                    batch, errors = batch
                    for error in errors:
                        on_unreadable(error)
                    if batch is None:
                        continue
                with loaded.precision.autocast():  # log_probs come out float32 whatever the precision
                    log_probs, lengths = model(batch["features"].to(device), batch["feature_lengths"].to(device))
                yield batch["ids"], log_probs, lengths
    finally:
        model.train(was_training)


def decode_utterances(loaded: LoadedModel, utterances: list[Utterance], decoder: Decoder,
                      device: torch.device | str = "cpu", batch_seconds: float = 200.0,
                      num_workers: int = 1, on_unreadable: Callable[[str], None] | None = None
                      ) -> dict[str, Hypothesis]:
    """Decode the model's output for `utterances` with `decoder`. Returns {utt id: Hypothesis}
    (without the unreadable ones when `on_unreadable` is given: see iter_emissions)."""
    hyps = {}
    for ids, log_probs, lengths in iter_emissions(loaded, utterances, device, batch_seconds, num_workers,
                                                  on_unreadable):
        hyps.update(zip(ids, decoder.decode(log_probs, lengths)))
    return hyps


def score(utterances: list[Utterance], hyps: dict[str, Hypothesis]) -> tuple[dict, list[dict]]:
    """Corpus WER/CER (summed errors / summed reference length) and per-utterance rows."""
    words, chars, rows = ErrorCounts(), ErrorCounts(), []
    for utt in utterances:
        ref, hyp = normalize_text(utt.text), hyps[utt.id].text
        counts, pairs = align_words(ref, hyp)
        words, chars = words + counts, chars + char_errors(ref, hyp)
        rows.append({"id": utt.id, "ref": ref, "hyp": hyp, "errors": counts, "aligned": format_alignment(pairs)})
    summary = {
        "wer": round(words.rate, 4),
        "cer": round(chars.rate, 4),
        "utterances": len(utterances),
        "words": words.reference_length,
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions,
    }
    return summary, rows


def write_report(out_dir: str | Path, name: str, summary: dict, rows: list[dict]) -> None:
    out_dir = Path(out_dir)
    make_folder(out_dir)
    with atomic_write(out_dir / f"recogs-{name}.txt") as f:
        for row in rows:
            e = row["errors"]
            f.write(f"{row['id']}\tref\t{row['ref']}\n{row['id']}\thyp\t{row['hyp']}\n"
                    f"{row['id']}\terrors\tsub={e.substitutions} del={e.deletions} ins={e.insertions} "
                    f"ref_words={e.reference_length}\n{row['id']}\taligned\t{row['aligned']}\n\n")
    with atomic_write(out_dir / f"wer-summary-{name}.json") as f:
        f.write(json.dumps({"set": name, **summary}) + "\n")


def evaluate(loaded: LoadedModel, utterances: list[Utterance], decoder: Decoder, out_dir: str | Path, name: str,
             device: str = "cpu", num_workers: int = 1, report: str | Path | None = None,
             report_utterances: int = MAX_UTTERANCES, decoding: str = "",
             hyps: dict[str, Hypothesis] | None = None) -> dict:
    """Decode, score and write the report files (and the HTML page at `report`, showing the
    `report_utterances` worst, their decoding named `decoding`). Returns the summary dict, whose
    "skipped" lists the errors of the utterances whose audio could not be read: the others are scored.
    `hyps`: the utterances already decoded (asr.shard gathers them from torchrun's ranks)."""
    if not utterances:
        raise EvaluateError(f"{name}: the manifest holds no utterances")
    if report_utterances < 0:
        raise EvaluateError(f"--report-utterances must be 0 or more, got {report_utterances}")
    unreadable: list[str] = []
    if hyps is None:
        hyps = decode_utterances(loaded, utterances, decoder, device=device, num_workers=num_workers,
                                 on_unreadable=unreadable.append)
    if not hyps:
        raise EvaluateError(f"{name}: no utterance could be read (the first: {unreadable[0]})")
    utterances = [u for u in utterances if u.id in hyps]
    summary, rows = score(utterances, hyps)
    summary["skipped"] = sorted(unreadable)
    write_report(out_dir, name, summary, rows)
    if report is not None:
        write_html_report(report, ReportInput(name, rows, utterances, loaded, decoder, decoding),
                          report_utterances)
    return summary
