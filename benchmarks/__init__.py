"""Benchmarks that are not the user-facing `mlx-jina bench` (the encoder): the knowledge-base store,
its search path and the HTTP server under load. Run from the repository root, e.g.
`python -m benchmarks.store`; they print tables (see BENCHMARKS.md) and are never run as tests."""
