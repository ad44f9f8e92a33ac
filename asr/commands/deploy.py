"""`asr serve` (the HTTP API and web page, asr.serve) and `asr export` (make a checkpoint the bundled
model that `asr serve` and `asr transcribe` use by default)."""

from __future__ import annotations

from asr.commands import add_command, add_precision_flag, decoding_options
from asr.config import ConfigError


def add_commands(sub) -> None:
    from asr.config import add_flags
    from asr.configs import DecodingOptions
    from asr.serve import ServeConfig

    p = add_command(sub, "serve", "HTTP API (OpenAI-style /v1/audio/transcriptions) and a web page to try a model")
    p.add_argument("--model", help="checkpoint to serve (default: the bundled model, asr/pretrained/)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: this machine only); 0.0.0.0 opens it to other hosts")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free one; the URL is printed)")
    add_flags(p, DecodingOptions, default_note="from the model")
    add_flags(p, ServeConfig)
    add_precision_flag(p)
    p.set_defaults(func=cmd_serve)
    _add_export(sub)


def _add_export(sub) -> None:
    p = add_command(sub, "export", "copy a checkpoint (no train_state) + LM into the bundled model folder")
    p.add_argument("checkpoint", help="checkpoint file")
    p.add_argument("--out-dir", help="destination folder (default: asr/pretrained/ of this installation)")
    p.add_argument("--lm", help="KenLM file for beam decoding, copied next to the model")
    p.add_argument("--lexicon", help="lexicon file for beam decoding, copied next to the model")
    p.add_argument("--decoding", nargs="*", default=[], metavar="KEY=VALUE",
                   help="default decoding options to store, e.g. decoder=beam lm_weight=1.5")
    p.set_defaults(func=cmd_export)


def cmd_serve(args) -> int:
    from asr.checkpoint import load_model
    from asr.config import flag_overrides, merge
    from asr.pretrained import default_model_path
    from asr.serve import ServeConfig, listen, require_extra
    from asr.serve.recognizer import Recognizer

    require_extra()  # before loading anything: one line saying what to install
    from asr.serve.app import serve

    config = merge(ServeConfig(), flag_overrides(args, ServeConfig))
    with listen(args.host, args.port) as sock:  # a port in use fails before the model loads
        loaded = load_model(args.model or default_model_path(), precision=args.precision)
        serve(Recognizer(loaded, decoding_options(args, loaded), config.workers), config, sock)
    return 0


def cmd_export(args) -> int:
    from asr.pretrained import PRETRAINED_DIR, export_model

    if args.out_dir is not None and not args.out_dir.strip():  # '' must not mean the bundled model's folder
        raise ConfigError("--out-dir is empty; leave it out to replace the bundled model")
    pairs = [item.partition("=") for item in args.decoding]
    bad = [key for key, sep, _ in pairs if not sep]
    if bad:
        raise ConfigError(f"--decoding expects KEY=VALUE, got {bad[0]!r}")
    path = export_model(args.checkpoint, args.out_dir or PRETRAINED_DIR, lm=args.lm, lexicon=args.lexicon,
                        decoding={key: value for key, _, value in pairs})
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
