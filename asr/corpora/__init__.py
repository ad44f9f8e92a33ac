"""Corpora: downloads (resumable, checksummed) and preparation of each corpus into manifests.

`download.py` fetches and extracts archives; `importers.py` turns common on-disk layouts
(Kaldi data dirs, LibriSpeech folders, audio + .txt folders) into utterances; one module
per corpus (`librispeech.py`, `speechocean.py`, and `lmtext.py` for the LM text) pairs a
`download_x()` with a `prepare_x()`.
"""
