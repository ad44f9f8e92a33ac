"""asr: a readable speech recognition toolkit (log-mel -> BiLSTM-CTC -> decode -> WER)."""

__version__ = "0.1.0"  # the only copy: pyproject.toml reads it ([tool.setuptools.dynamic])
