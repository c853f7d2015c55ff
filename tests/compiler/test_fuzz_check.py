"""A few hundred cases of bench/fuzz_check.py (the full run is 100,000): no crash, no timeout."""

import sys

import pytest

from conftest import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import fuzz_check  # noqa: E402


@pytest.mark.slow
def test_fuzzed_specs_are_accepted_or_located_errors():
    counts, crashes = fuzz_check.fuzz(300, seed=11, jobs=1, timeout=30.0)
    assert counts["crash"] == 0 and counts["timeout"] == 0, crashes[:3]
    assert counts["accepted"] + counts["located"] == 300


def test_every_generator_produces_input():
    import random
    rng = random.Random(0)
    words = fuzz_check._words()
    assert "dense" in words and "loguniform" in words and "digits" in words
    assert len(fuzz_check.CORPUS) >= 20 and fuzz_check.mutate_numbers(random.Random(3), "dense 16") != "dense 16"
    assert "repeat" in fuzz_check.deep_repeat(rng)
    assert len(fuzz_check.insert_noise(rng, "abc")) > 3
    assert "model m" in fuzz_check.deep_nesting(rng) and ";" in fuzz_check.one_line(rng)
