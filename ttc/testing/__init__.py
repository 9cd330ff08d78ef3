"""Test servers and helpers shipped with ttc so benchmarks and users can reuse them."""
