"""run-benchmarks / evaluate: methods × datasets × metrics → per-image values, summaries, stored runs."""
