"""Experiments over many chips and noise levels."""
