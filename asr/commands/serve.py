"""`asr serve`: the HTTP API and web page (asr.serve)."""

from __future__ import annotations

from asr.commands import add_command, decoding_options


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
    p.set_defaults(func=cmd_serve)


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
        loaded = load_model(args.model or default_model_path())
        serve(Recognizer(loaded, decoding_options(args, loaded), config.workers), config, sock)
    return 0
