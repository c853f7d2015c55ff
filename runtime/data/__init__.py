"""Data: the built-in sets and files (npz, CSV, IDX), their checks, the splits and preprocessing."""
