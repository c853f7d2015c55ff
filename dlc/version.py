"""The version of dlc: its own module, so that what reads it (the grammar cache key, the image cache key,
an export's metadata, --version) imports nothing else of dlc. pyproject.toml says the same (a test checks)."""

__version__ = "0.1.0"
