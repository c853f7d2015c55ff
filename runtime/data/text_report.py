"""What `dlc check` tells of a text data line: the texts, the vocabulary fitted on the training split, the
unknown-token rate on the validation split, how many texts `input L tokens` cuts; and the data-dependent
text lints (DL119: a vocabulary far larger than the training text has; DL120: L cuts most texts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlc.compiler.spec import Spec


@dataclass
class TextReport:
    name: str
    kind: str
    rows: int  # the embedding's vocab
    size: int  # ids the tokenizer fitted (pad and unknown included)
    distinct: int  # distinct tokens of the training split (words/chars; the fitted size for a subword tokenizer)
    length: int
    train: dict
    val: dict
    classes: list[str]
    labels: tuple = ()
    warnings: list = field(default_factory=list)
    splits: Any = field(default=None, repr=False)  # the splits it read: what training then trains on
    vocab_from: Path | None = None  # the run folder whose vocabulary they use (a resume), or None: fitted

    def splits_for(self, run: Path | None) -> Any:
        """The splits this survey read, when training would make the same ones (a vocabulary fitted afresh,
        or the same run's); else None."""
        return self.splits if self.vocab_from == run else None

    def lines(self) -> list[str]:
        t, v = self.train, self.val
        out = [f"texts: {t['texts'] + v['texts']:,} for training and validation from {self.name} "
               f"({len(self.classes)} classes), tokens={self.kind}",
               f"vocabulary: {self.size:,} ids of the embedding's {self.rows:,} (fitted on the {t['texts']:,} "
               f"training texts: {self.distinct:,} distinct tokens)",
               f"tokens per text (training): median {t['median_tokens']:g}, 95th percentile {t['p95_tokens']:g}; "
               f"input {self.length} tokens cuts {t['truncated']:,} of {t['texts']:,}"]
        if v["texts"]:
            out.append(f"validation: {100 * v['unknown_rate']:.1f} % of its {v['tokens']:,} tokens are unknown "
                       "(not in the training vocabulary)")
        return out


def survey_texts(spec: Spec, run=None) -> TextReport:
    """The splits as training makes them (with the vocabulary of `run`, a run folder being resumed), and
    the report of their tokens."""
    from dlc.compiler.lint import text_warnings
    from dlc.runtime.data.splits import prepare
    from dlc.runtime.data.text import ids_reader
    from dlc.runtime.data.tokenize import distinct_tokens, run_encoder
    splits = prepare(spec, encoder=run_encoder(run, spec) if run is not None else None, keep_texts=True)
    enc = splits.encoder
    texts_train, texts_val, _ = splits.texts
    train, val = enc.stats(texts_train), enc.stats(texts_val)
    distinct = distinct_tokens(enc, texts_train)
    rows = ids_reader(spec.graph)["vocab"]
    report = TextReport(splits.name, enc.kind, rows, enc.size, distinct, enc.length, train, val, splits.classes,
                        (splits.y_train, splits.classes), splits=splits, vocab_from=run)
    report.warnings = text_warnings(spec, rows, distinct, train["truncated"], train["texts"], enc.length)
    return report
