"""What a chip does after programming to win accuracy back: converter ranges, drift
compensation, denoising blocks."""
