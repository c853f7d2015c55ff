"""The tools over runs: eval, predict, export, diagnose, compare, search."""
