"""The tile backend in torch operations, for any torch device: the read, programming, drift and per-epoch noise."""
