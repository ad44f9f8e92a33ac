"""Optional dependencies: greedy transcription runs without flashlight-text (a core dependency
that an install with --no-deps can lack), and each feature that needs a missing package says what
to install in a single `error:` line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ONE_THREAD_ENV

from asr.decode import DecodingOptions, make_decoder
from asr.extras import MissingExtraError, require
from asr.text import CharTokenizer

# Import as if these packages were not installed: None in sys.modules makes `import` raise ImportError.
WITHOUT_BEAM = "import sys; sys.modules.update(dict.fromkeys(['flashlight']))"


def _uninstall(monkeypatch, package: str) -> None:
    """Make `package` (and its already imported submodules) unimportable for this test."""
    for name in [package, *(m for m in sys.modules if m.startswith(package + "."))]:
        monkeypatch.setitem(sys.modules, name, None)


def test_require_names_what_to_install(monkeypatch):
    assert require("json", "flashlight-text", "anything").dumps([1]) == "[1]"
    _uninstall(monkeypatch, "flashlight")
    with pytest.raises(MissingExtraError) as info:
        make_decoder(DecodingOptions(decoder="beam"), CharTokenizer())
    assert str(info.value).startswith("beam search needs pip install flashlight-text (")
    assert "flashlight" in str(info.value) and "--decoder greedy" in str(info.value)


@pytest.mark.slow
def test_greedy_transcription_runs_without_flashlight_text(speech_dir):
    """A fresh interpreter where flashlight-text cannot be imported: the bundled
    model transcribes greedily; its stored default, beam search, is one error line naming the package."""
    wav = str(speech_dir / "utt0.wav")
    run = [sys.executable, "-c", f"{WITHOUT_BEAM}; from asr.cli import main; sys.exit(main(sys.argv[1:]))",
           "transcribe", wav]
    greedy = subprocess.run([*run, "--decoder", "greedy"], env=ONE_THREAD_ENV, capture_output=True, text=True)
    assert greedy.returncode == 0, greedy.stderr
    path, text = greedy.stdout.strip().split("\t")
    assert path == wav and text.strip()
    beam = subprocess.run(run, env=ONE_THREAD_ENV, capture_output=True, text=True)
    assert beam.returncode == 1 and beam.stdout == ""
    errors = [line for line in beam.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in beam.stderr.splitlines() if line.strip()][-1:]
    assert errors[0].startswith("error: beam search needs pip install flashlight-text (")
