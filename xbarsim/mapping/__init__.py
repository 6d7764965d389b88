"""Trained torch layers onto crossbar tiles, and the chip as a whole."""
