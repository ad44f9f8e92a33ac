"""Synthetic training speech (`asr synth`): voices.py (engines and voice settings), prompts.py (what
they read), corpus.py (planning and rendering a resumable Ogg/Opus corpus)."""
