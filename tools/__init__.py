"""Runners kept apart from the library: the benchmark against PyTorch and the ablation table (run from the repository root: python -m tools.bench, python -m tools.ablation)."""
