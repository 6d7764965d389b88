"""The read path on the CPU (NumPy + Numba): DAC, patches, the per-block GEMM, the noise and ADC pass."""
