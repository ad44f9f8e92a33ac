"""`asr transcribe` and `asr evaluate` sharded over torchrun's processes, on one machine or several.

    torchrun --nproc-per-node 4 -m asr transcribe RECORDINGS/ --output-dir OUT
    torchrun --nproc-per-node 4 -m asr evaluate --model CKPT --manifest test.jsonl

The CLI calls `transcribe_sharded` / `evaluate_sharded` when torchrun started it (WORLD_SIZE > 1),
and `transcribe_sharded` in one process for an --output that an interrupted sharded run left
parts of (`has_parts`: refused without --resume, taken in with it); otherwise a plain
`asr transcribe` never comes here. Each rank (asr.distributed.Distributed):
  * takes a share of the inputs balanced by audio duration (`balance`: greedy longest-first bin
    packing, deterministic, so every rank computes the same shares without asking the others);
  * runs on its own device (`rank_device`: LOCAL_RANK's GPU) or its own share of the CPU cores
    (`rank_threads`);
  * writes its results, and rank 0 combines them so that the outputs are byte-identical to one
    process's:
      --output-dir DIR  each rank writes its inputs' files there, as one process would;
      --output FILE     each rank appends its lines to `.FILE.part-RANK` beside FILE (one write(2)
                        a line, as transcribe_many does); when all are done, rank 0 writes FILE
                        atomically with its earlier lines, then the parts' lines in input order,
                        and removes the parts;
      stdout            the lines travel to rank 0 through the process group, printed in input order;
      evaluate          each rank decodes its utterances; rank 0 gathers the hypotheses and scores
                        and writes them as one process does (one recogs file, one WER/CER).
`resume` works as in one process: rank 0 reads what is done (FILE and leftover parts of an
interrupted run, or DIR's files) before anyone writes, and only the rest is shared out. A bad
file is one `error:` line from the rank that met it; the others go on; rank 0's exit status
(torchrun's) is 1 when any rank had a failure. The process group is gloo whatever the device:
it carries only small Python objects and a final barrier. --output and --output-dir must be on
a file system every machine sees (docs/large-collections.md).
"""

from __future__ import annotations

import heapq
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

from asr.atomic import atomic_write
from asr.audio import AudioError, audio_info
from asr.checkpoint import LoadedModel
from asr.configs import TranscribeOptions
from asr.data.manifest import Utterance
from asr.decode import Decoder
from asr.distributed import Distributed
from asr.evaluate import EvaluateError, decode_utterances, evaluate
from asr.threads import usable_cores
from asr.transcribe import absolute, finished_files, iter_transcripts, transcribe_many
from asr.writers import OutputError, transcript_line

# Ranks finish their shares at different times and then wait for the last one at a barrier;
# gloo's default 30 minutes would fail a long job whose shares end an hour apart.
WAIT = timedelta(days=7)


def balance(durations: list[float], parts: int) -> list[list[int]]:
    """Indices of `durations` split into `parts` shares of nearly equal sums: the longest item
    first goes to the share with the least so far (ties: the lower index, the lower share).
    Each share is in input order. Deterministic: every rank computes the same split."""
    shares: list[list[int]] = [[] for _ in range(parts)]
    loads = [(0.0, rank) for rank in range(parts)]  # a heap of (seconds so far, share)
    for index in sorted(range(len(durations)), key=lambda i: (-durations[i], i)):
        load, rank = heapq.heappop(loads)
        shares[rank].append(index)
        heapq.heappush(loads, (load + durations[index], rank))
    return [sorted(share) for share in shares]


def rank_device(requested: str, ranks: Distributed) -> str:
    """`cuda` becomes this rank's GPU (LOCAL_RANK) when there are several ranks; anything else stays."""
    if ranks.enabled and requested == "cuda":
        return f"cuda:{ranks.local_rank}"
    return requested


def rank_threads(threads: int | None) -> int:
    """The torch threads of one rank: `threads` if given, else this machine's usable cores shared
    fairly among its ranks (torchrun would set 1 each, leaving most cores idle)."""
    if threads is not None:
        return threads
    return max(1, usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def join(ranks: Distributed) -> None:
    """Start the gloo process group (the module docstring says why gloo) unless there is one."""
    if ranks.enabled and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=WAIT)


def _from_rank0(ranks: Distributed, compute):
    """The value of `compute()` run on rank 0 alone, on every rank. An AsrError it raises is
    raised on every rank, so that none waits for the others forever."""
    if not ranks.enabled:
        return compute()
    box = [None]
    if ranks.is_main:
        try:
            box[0] = ("ok", compute())
        except OutputError as err:
            box[0] = ("error", str(err))
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise OutputError(value)
    return value


def part_path(output: Path, rank: int) -> Path:
    """Where rank `rank` appends its lines of `output`: hidden, beside it."""
    return output.with_name(f".{output.name}.part-{rank}")


def _parts(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f".{output.name}.part-*"))


def has_parts(output: str | Path) -> bool:
    """Whether an interrupted sharded run left parts of `output`: a run of any number of
    processes, one included, then goes through `transcribe_sharded`, which takes them in."""
    return bool(_parts(Path(output)))


def _todo(paths: list[Path], fmt: str | None, output: Path | None, targets: dict | None, resume: bool) -> list[Path]:
    """Rank 0: the inputs still to transcribe (all of them unless `resume`); refuses to overwrite."""
    if output is not None:
        parts = _parts(output)
        if not resume and ((output.exists() and output.stat().st_size) or parts):
            raise OutputError(f"{output}: already exists (or the parts of an interrupted run beside it); "
                              f"pass --resume to continue it, or remove it")
        done = set().union(*(finished_files(f, fmt) for f in [output, *parts]))  # cuts torn last lines
        todo = [p for p in paths if absolute(p) not in done]  # however each was named
    elif targets is not None and resume:
        todo = [p for p in paths if not all(t.exists() for t in targets[p])]
    else:
        todo = paths
    if resume and len(todo) < len(paths):
        print(f"resuming: {len(paths) - len(todo)} file(s) already done, {len(todo)} to go", file=sys.stderr)
    return todo


def _durations(paths: list[Path], ranks: Distributed) -> list[float]:
    """Every path's duration (0 for an unreadable one: reported when its turn comes); each rank
    reads the headers of every world_size-th path."""
    mine = {}
    for i in range(ranks.rank, len(paths), ranks.world_size):
        try:
            mine[i] = audio_info(paths[i])[0]
        except AudioError:
            mine[i] = 0.0
    merged = {i: seconds for part in ranks.gather(mine) for i, seconds in part.items()}
    return [merged[i] for i in range(len(paths))]


def transcribe_sharded(loaded: LoadedModel, paths: list[Path], decoder: Decoder, formats: tuple[str, ...],
                       ranks: Distributed, options: TranscribeOptions = TranscribeOptions(),
                       output: str | Path | None = None, output_dir: str | Path | None = None,
                       names: dict[Path, Path] | None = None, resume: bool = False) -> int:
    """This rank's share of `transcribe_many(paths, ...)`, combined as the module docstring says.
    Returns the number of failures of all ranks on rank 0, 0 on the others."""
    join(ranks)
    output = Path(output) if output is not None else None
    targets = ({p: [Path(output_dir) / f"{names[p]}.{f}" for f in formats] for p in paths}
               if output_dir is not None else None)
    todo = _from_rank0(ranks, lambda: _todo(paths, formats[0], output, targets, resume))
    share = [todo[i] for i in balance(_durations(todo, ranks), ranks.world_size)[ranks.rank]]
    hide = None if ranks.is_main else True  # one progress bar, rank 0's
    if output is not None:
        failures = transcribe_many(loaded, share, decoder, formats, options=options,
                                   output=part_path(output, ranks.rank), resume=True, hide_progress=hide)
    elif output_dir is not None:
        failures = transcribe_many(loaded, share, decoder, formats, options=options, output_dir=output_dir,
                                   names=names, hide_progress=hide)
    else:
        failures, lines = _transcribe_to_lines(loaded, share, decoder, formats[0], options)
        printed = {path: line for part in ranks.gather(lines) for path, line in part.items()}
        if ranks.is_main:
            for path in paths:
                if path in printed:
                    print(printed[path], flush=True)
    total = sum(ranks.gather(failures))
    if ranks.enabled:
        dist.barrier()  # every part is complete
    if output is not None and ranks.is_main:
        merge_parts(output, paths, formats[0])
    return total if ranks.is_main else 0


def _transcribe_to_lines(loaded: LoadedModel, paths: list[Path], decoder: Decoder, fmt: str,
                         options: TranscribeOptions) -> tuple[int, dict[Path, str]]:
    """(failures, {path: its stdout line}) for this rank's share."""
    failures, lines = 0, {}
    for path, result in iter_transcripts(loaded, paths, decoder, options):
        if isinstance(result, AudioError):
            sys.stderr.write(f"error: {result}\n")
            failures += 1
        else:
            lines[path] = transcript_line(path, result, fmt)
    return failures, lines


def merge_parts(output: Path, paths: list[Path], fmt: str) -> None:
    """Rank 0, after every rank is done: `output` becomes its earlier lines, then the parts'
    lines in input order (a line of a file not among `paths` after those), written atomically;
    then the parts go. A line already in `output` (a merge killed before the parts went) is skipped."""
    done = finished_files(output, fmt)
    order = {str(p): i for i, p in enumerate(paths)}
    new: dict[str, str] = {}
    parts = _parts(output)
    for part in parts:
        for line in part.read_text(encoding="utf-8").splitlines():
            file = _file_of(line, fmt)
            if absolute(file) not in done:
                new.setdefault(file, line)
    earlier = output.read_text(encoding="utf-8") if output.exists() else ""
    with atomic_write(output) as f:
        f.write(earlier)
        for file in sorted(new, key=lambda name: (order.get(name, len(order)), name not in order)):
            f.write(new[file] + "\n")
    for part in parts:
        part.unlink()


def _file_of(line: str, fmt: str) -> str:
    """The input file a txt or jsonl line is about (asr.transcribe.finished_files reads it the same way)."""
    return str(json.loads(line)["file"]) if fmt == "jsonl" else line[: line.index("\t")]


def evaluate_sharded(loaded: LoadedModel, utterances: list[Utterance], decoder: Decoder, out_dir: str | Path,
                     name: str, ranks: Distributed, device: str = "cpu", num_workers: int = 1,
                     **report) -> dict | None:
    """`asr.evaluate.evaluate` with the decoding shared out: each rank decodes its utterances,
    rank 0 scores them all and writes the files. Returns the summary on rank 0, None elsewhere."""
    if not utterances:
        raise EvaluateError(f"{name}: the manifest holds no utterances")
    join(ranks)
    share = [utterances[i] for i in balance([u.duration for u in utterances], ranks.world_size)[ranks.rank]]
    hyps = decode_utterances(loaded, share, decoder, device=device, num_workers=num_workers) if share else {}
    gathered = [None] * ranks.world_size if ranks.is_main else None
    dist.gather_object(hyps, gathered, dst=0)
    summary = None
    if ranks.is_main:
        every = {utt_id: hyp for part in gathered for utt_id, hyp in part.items()}
        summary = evaluate(loaded, utterances, decoder, out_dir, name, hyps=every, **report)
    dist.barrier()  # the others wait: torchrun ends the job when one rank fails
    return summary
