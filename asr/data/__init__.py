"""Data: manifests (what audio and text we have), importers, samplers and the dataset."""
