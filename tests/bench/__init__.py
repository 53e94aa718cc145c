"""Fast tests of the benchmarks' pure computations (bench/figures.py); no timed tests."""
