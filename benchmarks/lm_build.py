"""Word n-gram estimation at corpus scale: KenLM lmplz (what `asr lm build` runs) vs IRSTLM vs kaldingram.

    python -m benchmarks.lm_build --text TEXT [--order 3] [--vocab-size 100000] [--kaldingram-words 1000000,4000000]

TEXT is normalized LM text, one sentence per line, e.g. the whole shared corpus as
`asr lm build` writes it (asr.lm.write_training_text; `--make-text DIR` writes it
from a corpus folder first). Every tool estimates a Kneser-Ney-style `--order`-gram
over the same `--vocab-size` most frequent words (others become <unk>) and drops
singleton n-grams above unigrams, in its own process, one at a time:
  * lmplz:      -S 2G on-disk sort, --prune 0 1 1, --limit_vocab_file
  * IRSTLM:     build-lm.sh (Debian `irstlm`, if installed): 4 dictionary splits, improved
                shift-beta (its modified Kneser-Ney), -p (singletons pruned), then compile-lm to ARPA
  * kaldingram: the pure-Python estimator `asr lm build` used before, on the first N words
                only (`--kaldingram-words`): it holds every n-gram in Python objects
Printed for each: wall seconds, peak resident memory (the child's VmHWM, polled, since
ru_maxrss also counts the forking Python), and n-gram counts of its ARPA file.

    python -m benchmarks.lm_build --text TEXT --tools none --oov-dev data/dev.jsonl --in-domain data/train.jsonl

prints instead the out-of-vocabulary rate of the dev transcripts' running words for
vocabularies of the 20k..200k most frequent words of TEXT plus the in-domain words.

    python -m benchmarks.lm_build --load LM [LEXICON] [LM [LEXICON] ...]   (LEXICON: "-" for none)

times loading each LM (+ lexicon) into our beam decoder (make_decoder: KenLM load + lexicon
trie), best of 3, in wall and CPU seconds (CPU: what an idle machine would take as wall time;
this loading is single-threaded), and says whether anything reached stderr (KenLM's banner).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine_line

IRSTLM = Path("/usr/lib/irstlm")
KALDINGRAM_SCRIPT = """
import sys
from kaldingram.train import NgramCounts
counts = NgramCounts(int(sys.argv[2]))
vocab = set(open(sys.argv[3]).read().split())
budget = int(sys.argv[4])
with open(sys.argv[1]) as f:
    for line in f:
        words = line.split()
        budget -= len(words)
        if budget < 0:
            break
        counts.add_raw_counts_from_line(" ".join(w if w in vocab else "<unk>" for w in words))
counts.cal_discounting_constants()
counts.cal_f()
counts.cal_bow()
with open(sys.argv[5], "w") as out:
    counts.print_as_arpa(fout=out)
"""


def measure(command: list[str], **kwargs) -> tuple[float, int]:
    """Run `command`; return (wall seconds, peak resident kB as VmHWM polled every 50 ms)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _vm_hwm(process.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"{command[0]} failed: {process.stderr.read().decode()[-500:]}")
    return seconds, peak


def _vm_hwm(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"VmHWM:\s*(\d+) kB", status)
    return int(found.group(1)) if found else 0


def ngram_counts(arpa: Path) -> str:
    counts = []
    with open(arpa, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("ngram "):
                counts.append(line.split("=")[1].strip())
            elif line.startswith("\\1-grams"):
                break
    return " / ".join(counts)


def top_words(text: Path, size: int) -> list[str]:
    counts: collections.Counter = collections.Counter()
    with open(text, encoding="utf-8") as f:
        for line in f:
            counts.update(line.split())
    return [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:size]]


def print_load_time(lm: str, lexicon: str | None) -> None:
    from asr.decode import DecodingOptions, make_decoder
    from asr.text import CharTokenizer

    options = DecodingOptions(decoder="beam", lm=lm, lexicon=lexicon)
    with tempfile.TemporaryFile() as scratch:
        saved = os.dup(2)
        os.dup2(scratch.fileno(), 2)  # catch anything written to stderr, by Python or C++
        try:
            wall, cpu = min(_timed(lambda: make_decoder(options, CharTokenizer())) for _ in range(3))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        scratch.seek(0)
        stderr = scratch.read()
    size = sum(Path(p).stat().st_size for p in (lm, lexicon) if p) / 1e6
    print(f"{lm} + {lexicon}: {size:.1f} MB, loads in {wall:.2f} s wall, {cpu:.2f} s CPU; "
          f"stderr: {len(stderr)} bytes")


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def print_oov(text: Path, dev: Path, in_domain: Path | None) -> None:
    from asr.textcorpus import iter_sentences

    ranked = top_words(text, 10**9)
    keep = {w for s in iter_sentences([in_domain]) for w in s.split()} if in_domain else set()
    dev_words = [w for s in iter_sentences([dev], deduplicate=False) for w in s.split()]
    print(f"OOV rate of {dev} ({len(dev_words):,} running words); vocabulary = top N of {text} "
          f"+ {len(keep):,} words of {in_domain}:")
    for size in (0, 20_000, 50_000, 100_000, 150_000, 200_000):
        vocabulary = set(ranked[:size]) | keep
        oov = sum(w not in vocabulary for w in dev_words) / len(dev_words)
        print(f"  N = {size:>7,}: {len(vocabulary):>7,} words, OOV {oov:.2%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", help="normalized LM text, one sentence per line")
    parser.add_argument("--load", nargs="+", help="LM LEXICON pairs to time loading (LEXICON - for none)")
    parser.add_argument("--make-text", help="first write --text from this corpus folder (asr.lm.write_training_text)")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=100_000)
    parser.add_argument("--kaldingram-words", default="1000000,4000000")
    parser.add_argument("--tools", default="lmplz,irstlm,kaldingram", help="comma-separated, or none")
    parser.add_argument("--oov-dev", help="manifest: print its OOV rate for several vocabulary sizes")
    parser.add_argument("--in-domain", help="manifest whose words every vocabulary keeps (with --oov-dev)")
    args = parser.parse_args(argv)
    print(machine_line())
    if args.load:
        for lm, lexicon in zip(args.load[::2], args.load[1::2]):
            print_load_time(lm, None if lexicon == "-" else lexicon)
        return 0
    text = Path(args.text)
    if args.make_text:
        from asr.lm import write_training_text

        start = time.perf_counter()
        stats = write_training_text([args.make_text], text)
        print(f"text pass: {stats['words']:,} words, {stats['sentences']:,} sentences in "
              f"{time.perf_counter() - start:.0f} s")
    if args.oov_dev:
        print_oov(text, Path(args.oov_dev), Path(args.in_domain) if args.in_domain else None)
    tools = [] if args.tools == "none" else args.tools.split(",")
    if not tools:
        return 0
    work = Path(tempfile.mkdtemp(prefix="lm-bench-"))
    vocab = work / "vocab.txt"
    vocab.write_text("\n".join(top_words(text, args.vocab_size)) + "\n", encoding="utf-8")
    words = sum(1 for line in open(text, encoding="utf-8") for _ in line.split())
    print(f"{text}: {words:,} words; vocabulary {args.vocab_size:,}; order {args.order}")
    print(f"{'tool':<32} {'words':>12} {'wall s':>8} {'peak MB':>8}  n-grams")
    if "lmplz" in tools:
        from asr.lm import kenlm_tool

        arpa = work / "lmplz.arpa"
        seconds, peak = measure([kenlm_tool("lmplz"), "-o", str(args.order), "-S", "2G", "-T", f"{work}/",
                                 "--text", str(text), "--arpa", str(arpa), "--prune", "0", "1", "1",
                                 "--limit_vocab_file", str(vocab), "--discount_fallback"])
        print(f"{'lmplz (KenLM)':<32} {words:>12,} {seconds:>8.0f} {peak / 1024:>8.0f}  {ngram_counts(arpa)}")
        arpa.unlink()
    if "irstlm" in tools and (IRSTLM / "bin" / "build-lm.sh").is_file():
        arpa = work / "irstlm.arpa"
        script = (f"awk -v V={vocab} 'BEGIN{{while((getline w < V)>0) keep[w]=1}} "
                  f"{{s=\"<s>\"; for(i=1;i<=NF;i++) s=s\" \"($i in keep ? $i : \"<unk>\"); print s\" </s>\"}}' "
                  f"{text} > {work}/irst.txt && {IRSTLM}/bin/build-lm.sh -i {work}/irst.txt -n {args.order} "
                  f"-o {work}/irst.ilm.gz -k 4 -p -s improved-kneser-ney -t {work}/irst-tmp && "
                  f"{IRSTLM}/bin/compile-lm --text=yes {work}/irst.ilm.gz {arpa}")
        seconds, peak = measure(["bash", "-c", script], env={**os.environ, "IRSTLM": str(IRSTLM)})
        print(f"{'IRSTLM build-lm.sh + compile-lm':<32} {words:>12,} {seconds:>8.0f} {peak / 1024:>8.0f}  "
              f"{ngram_counts(arpa)}  (peak: the largest single process)")
    if "kaldingram" in tools:
        for budget in map(int, args.kaldingram_words.split(",")):
            arpa = work / "kaldingram.arpa"
            seconds, peak = measure([sys.executable, "-c", KALDINGRAM_SCRIPT, str(text), str(args.order),
                                     str(vocab), str(budget), str(arpa)])
            print(f"{'kaldingram (pure Python)':<32} {min(budget, words):>12,} {seconds:>8.0f} {peak / 1024:>8.0f}  "
                  f"{ngram_counts(arpa)}  (no pruning)")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
