"""`asr prepare ...` (manifests from a corpus on disk, or downloaded first) and `asr synth`."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr.commands import add_command, amount
from asr.config import ConfigError


def add_commands(sub) -> None:
    from asr.corpora.librispeech import SUBSETS as LIBRISPEECH_SUBSETS

    p = add_command(sub, "prepare", "build JSONL manifests from a corpus on disk (or download it first)")
    layouts = p.add_subparsers(dest="layout", required=True, metavar="LAYOUT")
    for layout, source in (("kaldi", "Kaldi data dir"), ("librispeech-dir", "LibriSpeech subset folder"),
                           ("folder", "folder of audio files with .txt transcripts")):
        q = add_command(layouts, layout, f"one manifest from a {source}")
        q.add_argument("source", help=source)
        q.add_argument("manifest", help="output manifest (.jsonl)")
        q.add_argument("--jobs", type=int, default=None, help="processes reading audio headers (default: all cores)")
        q.set_defaults(func=cmd_prepare)
    q = add_command(layouts, "librispeech", "download LibriSpeech subsets, write a manifest for each")
    q.add_argument("--subsets", nargs="+", required=True, choices=LIBRISPEECH_SUBSETS, metavar="SUBSET",
                   help=", ".join(LIBRISPEECH_SUBSETS))
    q.add_argument("--root", required=True, help="archives go here, extracted audio in ROOT/LibriSpeech")
    q.add_argument("--manifest-dir", help="where SUBSET.jsonl go (default: ROOT/manifests)")
    q.add_argument("--checksums", help="md5sum-style file replacing the published MD5s (for private mirrors)")
    _add_download_flags(q)
    q.set_defaults(func=cmd_prepare_librispeech)
    q = add_command(layouts, "speechocean762", "download speechocean762 (or use a copy), write train/dev manifests")
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", help="download here: archive in ROOT, corpus in ROOT/speechocean762")
    source.add_argument("--corpus-dir", help="use this copy instead (train/ and dev/ or test/), no download")
    q.add_argument("--manifest-dir", help="where train.jsonl and dev.jsonl go (default: ROOT/manifests)")
    q.add_argument("--md5", help="MD5 of the mirror's archive (default: check the OpenSLR archive's size)")
    _add_download_flags(q)
    q.set_defaults(func=cmd_prepare_speechocean762)
    q = add_command(layouts, "text", "fetch the LM text (Gutenberg books, Common Voice sentences) or check a copy")
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", help="fetch into ROOT/text (resumable; each file checked against its SHA-256)")
    source.add_argument("--text-dir", help="check this copy instead (every pinned file, unchanged), no download")
    q.add_argument("--mirror", help="URL of a copy in the pinned layout (file:// works too)")
    q.add_argument("--pinned", help="list of PATH, BYTES, SHA256 replacing the bundled one (for private mirrors)")
    q.add_argument("--dry-run", action="store_true", help="print the URLs it would fetch, fetch nothing")
    q.set_defaults(func=cmd_prepare_text)
    _add_synth(sub)


def _add_download_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the `asr prepare CORPUS` commands that download from OpenSLR."""
    parser.add_argument("--mirror", help="URL standing for https://www.openslr.org/resources (file:// works too)")
    parser.add_argument("--download-only", action="store_true", help="download and extract, write no manifests")
    parser.add_argument("--jobs", type=int, default=None, help="processes reading audio headers (default: all cores)")


def _add_synth(sub) -> None:
    from asr.synth.voices import DEFAULT_TIMEOUT  # numpy, no torch

    p = add_command(sub, "synth", "synthesize extra training speech (espeak-ng, flite, festival, piper)")
    p.add_argument("--prompts", action="append", default=[], metavar="PATH[:WEIGHT]",
                   help="what to read: a (training!) manifest, a text file (.txt, .txt.gz) or a folder of them, "
                        "drawn from with this relative weight (default 1); repeatable")
    p.add_argument("--grammar-weight", type=float, default=0.25,
                   help="relative weight of sentences made up here (digits, numbers, a small grammar); 0: none")
    p.add_argument("--exclude-text", action="append", default=[], metavar="PATH",
                   help="manifest or text whose sentences are never prompts (dev and test text); repeatable")
    p.add_argument("--prompt-pool", type=int, default=0, metavar="N",
                   help="draw from a seeded sample of N sentences per text source (0: all of them)")
    p.add_argument("--split", choices=["train", "dev"], default="train",
                   help="dev: only the voices and text that train never uses (a synthetic dev set)")
    p.add_argument("--out-dir", required=True, help="folder for the audio files (Ogg/Opus)")
    p.add_argument("--manifest", required=True, help="output manifest (.jsonl)")
    p.add_argument("--count", type=int, required=True, help="utterances to make (a rerun skips finished ones)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engines", help="comma-separated subset of espeak,flite,festival,piper (default: all installed)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="seconds an engine may take for one utterance")
    p.set_defaults(func=cmd_synth)


def cmd_prepare(args) -> int:
    from asr.corpora import importers
    from asr.data.manifest import write_manifest

    importer = {"kaldi": importers.import_kaldi_dir, "librispeech-dir": importers.import_librispeech,
                "folder": importers.import_folder}[args.layout]
    utterances = importer(args.source, jobs=args.jobs)
    write_manifest(utterances, args.manifest)
    print(f"wrote {args.manifest}: {amount(utterances)}")
    return 0


def cmd_prepare_librispeech(args) -> int:
    from asr.corpora.librispeech import download_librispeech, prepare_librispeech, read_md5sums

    checksums = read_md5sums(args.checksums) if args.checksums else None
    download_librispeech(args.subsets, args.root, mirror=args.mirror, checksums=checksums)
    if args.download_only:
        return 0
    manifest_dir = Path(args.manifest_dir or Path(args.root) / "manifests")
    for subset, utterances in prepare_librispeech(args.subsets, args.root, manifest_dir, jobs=args.jobs).items():
        print(f"{manifest_dir / subset}.jsonl: {amount(utterances)}")
    return 0


def cmd_prepare_speechocean762(args) -> int:
    from asr.corpora.speechocean import download_speechocean762, prepare_speechocean762

    if args.corpus_dir and not args.manifest_dir:  # no ROOT to put them under
        raise ConfigError("--corpus-dir needs --manifest-dir (where train.jsonl and dev.jsonl go)")
    corpus = args.corpus_dir or download_speechocean762(args.root, mirror=args.mirror, md5=args.md5)
    if args.download_only:
        print(f"corpus ready in {corpus}")
        return 0
    manifest_dir = Path(args.manifest_dir or Path(args.root) / "manifests")
    for name, utterances in prepare_speechocean762(corpus, manifest_dir, jobs=args.jobs).items():
        print(f"{manifest_dir / name}.jsonl: {amount(utterances)}")
    return 0


def cmd_prepare_text(args) -> int:
    from asr.corpora.lmtext import download_text, missing_files, prepare_text, read_pinned, text_urls

    pinned = read_pinned(args.pinned) if args.pinned else read_pinned()
    if args.text_dir:
        print(prepare_text(args.text_dir, pinned))
    elif args.dry_run:  # the URLs a download would fetch now, one a line
        urls = text_urls(args.mirror, pinned)
        for p in missing_files(Path(args.root) / "text", pinned):
            print(urls[p.path])
    else:
        print(download_text(args.root, args.mirror, pinned))
    return 0


def cmd_synth(args) -> int:
    from asr.synth.corpus import plan_jobs, synthesize_corpus
    from asr.synth.prompts import load_sources

    sources = load_sources(args.prompts, args.grammar_weight, args.exclude_text, args.prompt_pool, args.seed)
    engines = args.engines.split(",") if args.engines else None
    jobs = plan_jobs(sources, args.count, seed=args.seed, engines=engines, split=args.split)
    utterances, failures = synthesize_corpus(jobs, args.out_dir, args.manifest, workers=args.jobs,
                                             timeout=args.timeout)
    speakers = len({u.speaker for u in utterances})
    skipped = f"; {len(failures)} skipped (a rerun retries them)" if failures else ""
    print(f"wrote {args.manifest}: {amount(utterances)}, {speakers} voice settings{skipped}")
    return 0
