"""asr: a readable speech recognition toolkit (log-mel -> BiLSTM-CTC -> decode -> WER)."""

__version__ = "0.1.0"
