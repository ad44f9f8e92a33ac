"""`asr adapt`: a few espeak-ng utterances of one voice in, a model that loads everywhere out.

Checked: adaptation lowers the loss on the utterances it learnt from; the written
checkpoint (with its LM and lexicon beside it, holding DATA's new words) loads in
`asr transcribe`, `asr evaluate` and serve's model list, also after the folder is
moved; a stop request keeps the best weights so far (and the CLI exits 130 on
Ctrl-C); each kind of bad DATA gives one `error:` line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import ONE_THREAD_ENV, signal_after, synthesize, tone

from asr.adapt.data import AdaptDataError, check_data, read_data, split_held_out
from asr.adapt.job import AdaptConfig, AdaptJob, adapt
from asr.adapt.vocabulary import read_lexicon_words
from asr.checkpoint import load_model, read_checkpoint
from asr.cli import main
from asr.text import CharTokenizer

ROOT = Path(__file__).resolve().parent.parent
# Read by one espeak-ng voice; "zorbly" is in no lexicon, "42" is spelled out ("forty two").
VOICE_SENTENCES = [
    "the cat sat on the mat", "a dog ran in the park", "she sells sea shells by the shore",
    "open the red door slowly", "my friend zorbly plays the piano", "we met at room 42 today",
    "the river runs to the sea", "please call me after lunch",
]
FAST = {"speeds": (1.0,), "held_out": 0.0, "min_steps": 1}


@pytest.fixture(scope="session")
def voice_dir(tmp_path_factory) -> Path:
    """A folder of 8 wav + .txt pairs read by espeak-ng's en-us voice (about 15 s of speech)."""
    root = tmp_path_factory.mktemp("voice")
    for i, text in enumerate(VOICE_SENTENCES):
        synthesize(text, root / f"p{i:02d}.wav", speed=140)
        (root / f"p{i:02d}.txt").write_text(text + "\n")
    return root


def test_adaptation_lowers_the_loss_and_stops_keeping_the_best(voice_dir, tiny_checkpoint, tmp_path):
    out = tmp_path / "me.pt"
    config = AdaptConfig(**FAST, steps=30, lr=1e-2, freeze_layers=0, specaug=False)
    summary = adapt(AdaptJob(data=str(voice_dir), out=str(out), base=str(tiny_checkpoint)), config, log=lambda _: None)
    assert summary["steps"] == 30 and not summary["interrupted"]
    assert summary["loss_after"] < 0.9 * summary["loss_before"], summary
    assert read_checkpoint(out)["adaptation"]["loss_after"] == summary["loss_after"]
    base, adapted = load_model(tiny_checkpoint), load_model(out)
    changed = [name for name, weight in adapted.model.state_dict().items()
               if not torch.equal(weight, base.model.state_dict()[name])]
    assert changed, "no weight changed"

    stop = threading.Event()
    stopped = adapt(AdaptJob(data=str(voice_dir), out=str(tmp_path / "stopped.pt"), base=str(tiny_checkpoint)),
                    AdaptConfig(**FAST, steps=1000), lambda p: p.step >= 3 and stop.set(), stop, log=lambda _: None)
    assert stopped["interrupted"] and stopped["steps"] == 3
    assert load_model(tmp_path / "stopped.pt").model is not None


def test_replay_mixes_in_base_training_data(voice_dir, tiny_checkpoint, speech_manifest, tmp_path):
    said = []
    adapt(AdaptJob(data=str(voice_dir), out=str(tmp_path / "me.pt"), base=str(tiny_checkpoint),
                   replay=str(speech_manifest)), AdaptConfig(**FAST, steps=2, replay_ratio=0.3), log=said.append)
    replayed = next(line for line in said if line.startswith("replaying"))
    assert 1 <= int(replayed.split()[1]) < 6  # about 30% of the voice's ~15 s, from a 6-utterance manifest


def test_lower_layers_stay_frozen(voice_dir, tmp_path):
    from conftest import save_checkpoint, tiny_model

    base = save_checkpoint(tiny_model(num_layers=2), tmp_path / "two.pt")
    adapt(AdaptJob(data=str(voice_dir), out=str(tmp_path / "me.pt"), base=str(base)),
          AdaptConfig(**FAST, steps=3, freeze_layers=1), log=lambda _: None)
    before, after = load_model(base).model.state_dict(), load_model(tmp_path / "me.pt").model.state_dict()
    for name in before:
        assert torch.equal(before[name], after[name]) == ("_l0" in name), name


def test_held_out_split_is_seeded_and_bounded(voice_dir):
    utterances = read_data(voice_dir)
    train, held = split_held_out(utterances, 0.25, seed=3)
    assert len(held) == 2 and len(train) == 6 and not {u.id for u in train} & {u.id for u in held}
    assert split_held_out(utterances, 0.25, seed=3) == (train, held)
    assert split_held_out(utterances[:4], 0.25) == (utterances[:4], [])  # too few to hold any out


@pytest.mark.slow
def test_adapted_bundled_model_decodes_with_new_words_and_loads_everywhere(voice_dir, tmp_path):
    """The bundled model (beam + LM + lexicon) adapted for a few steps: the model and its files
    travel together, and transcribe/evaluate/serve all take it."""
    words = tmp_path / "words.txt"
    words.write_text("Quixotry and Blorptastic\n")
    out = tmp_path / "models" / "me.pt"
    done = subprocess.run([sys.executable, "-m", "asr", "adapt", str(voice_dir), "--out", str(out),
                           "--text", str(words), "--steps", "4", "--speeds", "[1.0]", "--threads", "1"],
                          cwd=ROOT, env=ONE_THREAD_ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    stored = read_checkpoint(out)["decoding"]
    assert stored["decoder"] == "beam" and stored["lexicon"] == "me.lexicon.txt" and stored["lm"] == "me.lm.bin"
    lexicon = read_lexicon_words(out.with_name("me.lexicon.txt"))
    assert {"zorbly", "forty", "quixotry", "blorptastic"} <= lexicon and len(lexicon) > 50_000
    assert "zorbly" in read_checkpoint(out)["adaptation"]["new_words"]

    moved = tmp_path / "elsewhere"
    shutil.copytree(out.parent, moved)
    shutil.rmtree(out.parent)
    loaded = load_model(moved / "me.pt")
    assert Path(loaded.decoding.lexicon) == (moved / "me.lexicon.txt").resolve()
    wav = voice_dir / "p00.wav"
    run = subprocess.run([sys.executable, "-m", "asr", "transcribe", str(wav), "--model", str(moved / "me.pt")],
                         cwd=ROOT, env=ONE_THREAD_ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip(), run.stderr
    manifest = tmp_path / "voice.jsonl"
    rows = [{"id": p.stem, "audio_path": str(p), "duration": sf.info(p).duration,
             "text": p.with_suffix(".txt").read_text(), "speaker": "me"} for p in sorted(voice_dir.glob("*.wav"))]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["evaluate", "--model", str(moved / "me.pt"), "--manifest", str(manifest),
                 "--out-dir", str(tmp_path / "eval")]) == 0
    assert json.loads((tmp_path / "eval" / "wer-summary-voice.json").read_text())["utterances"] == 8

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from asr.serve import ServeConfig
    from asr.serve.app import create_app
    from asr.serve.recognizer import Recognizer

    served = load_model(tmp_path / "elsewhere" / "me.pt")
    (tmp_path / "adapted" / "mine").mkdir(parents=True)
    for name in ("me.pt", "me.lm.bin", "me.lexicon.txt"):
        shutil.copy(moved / name, tmp_path / "adapted" / "mine" / ("model.pt" if name == "me.pt" else name))
    config = ServeConfig(workers=1, models_dir=str(tmp_path / "adapted"))
    with TestClient(create_app(Recognizer(served, served.decoding), config)) as client:
        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert ids == ["elsewhere/me", "adapted/mine"]
        answer = client.post("/v1/audio/transcriptions", files={"file": ("p.wav", wav.read_bytes())},
                             data={"model": "adapted/mine"})
        assert answer.status_code == 200, answer.text


def test_ctrl_c_writes_the_best_model_so_far_and_exits_130(voice_dir, tiny_checkpoint, tmp_path):
    out = tmp_path / "me.pt"
    command = signal_after("asr.adapt.job:compute_loss", 5, "SIGINT", "self",
                           ["adapt", str(voice_dir), "--out", str(out), "--model", str(tiny_checkpoint),
                            "--steps", "500", "--speeds", "[1.0]", "--held-out", "0"])
    done = subprocess.run(command, cwd=ROOT, env=ONE_THREAD_ENV, capture_output=True, text=True, timeout=300,
                          start_new_session=True)
    assert done.returncode == 130, done.stderr
    assert "interrupted: wrote the best model so far" in done.stderr
    assert read_checkpoint(out)["adaptation"]["steps"] < 500


def error_line(capsys, argv: list[str]) -> str:
    """The one stderr line of a failing `asr ARGV` (exit 1)."""
    assert main(argv) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_bad_data_gives_one_error_line(tmp_path, tiny_checkpoint, capsys):
    def run(data) -> str:
        out = str(tmp_path / "out.pt")
        return error_line(capsys, ["adapt", str(data), "--out", out, "--model", str(tiny_checkpoint)])

    assert "not a folder" in run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert "no audio files" in run(tmp_path / "empty")

    few = tmp_path / "few"
    few.mkdir()
    for i in range(3):
        sf.write(few / f"a{i}.wav", tone(2.0), 16000)
        (few / f"a{i}.txt").write_text("hello there")
    sf.write(few / "b.wav", tone(1.0), 16000)
    assert "1 of 4 audio files have no .txt transcript" in run(few)
    (few / "b.txt").write_text("  \n")
    assert "b.wav: empty transcript" in run(few)
    (few / "b.txt").write_text("hello 你好")
    assert "outside the model's alphabet (你好)" in run(few)
    (few / "b.txt").write_text("I paid $5 at 3:30")  # numbers are spelled out: fine
    message = run(few)
    assert "too little speech: 7.0 s in 4 utterance(s)" in message and "at least 10 s" in message
    assert not (tmp_path / "out.pt").exists()


def test_check_data_accepts_numbers_and_accents(tmp_path):
    from asr.data.manifest import Utterance

    utts = [Utterance(f"u{i}", "x.wav", 5.0, text, "s") for i, text in enumerate(["Café at 10:30", "Mr. Smith", "ok"])]
    check_data(utts, CharTokenizer())
    with pytest.raises(AdaptDataError, match="too little speech"):
        check_data(utts[:2], CharTokenizer())


def test_adapt_help_lists_the_budget_flags(capsys):
    with pytest.raises(SystemExit):
        main(["adapt", "--help"])
    text = capsys.readouterr().out
    for flag in ("--out", "--model", "--text", "--steps", "--minutes", "--replay", "--freeze-layers", "--held-out"):
        assert flag in text
