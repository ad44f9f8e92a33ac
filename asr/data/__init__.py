"""Core data: manifests (what audio and text we have), the duration-bucketed sampler and the dataset."""
