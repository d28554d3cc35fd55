"""statcoder's benchmark suite (BENCHMARK.md): coder quality per arm (protocol Q) and performance (protocol P)."""
