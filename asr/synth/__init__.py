"""Synthetic training speech (`asr synth`): job.py (one utterance to make), voices.py (engines and
voice settings), prompts.py (what they read), corpus.py (planning and rendering a resumable
Ogg/Opus corpus). Imports run one way: corpus -> voices -> job."""
