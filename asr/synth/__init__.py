"""Synthetic training speech: text-to-speech engines (espeak-ng, flite, piper) driven from prompts."""
