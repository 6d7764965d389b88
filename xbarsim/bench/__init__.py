"""Throughput benchmarks: simulated work against a clean float32 GEMM in the same process."""
