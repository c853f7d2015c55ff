"""Texts -> token ids, with a vocabulary fitted on the training split only.

`data ... tokens=words` (the default): lowercase, then runs of letters, digits, _ and ' (Unicode-aware);
`tokens=chars`: each character but a newline; `tokens=bpe` / `tokens=wordpiece`: a subword tokenizer
trained by Hugging Face `tokenizers` (lowercased, split at whitespace and punctuation first). Ids: 0 pads,
1 is the unknown token, 2 ... the vocabulary (the most frequent training tokens first, ties by the token),
at most the embedding's `vocab` rows in all. A text keeps its first L tokens (`input L tokens`); a text
with no token reads as one unknown token.

The word and character rules are the ones the exported string-in model runs in onnxruntime
(compiler/onnx_text.py): the same regular expression in RE2's syntax, and the same lowercasing -- each
code point on its own (Python's `str.lower` would see a word-final sigma, onnxruntime does not).
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError, Source
from dlc.compiler.onnx_text import CHAR_PATTERN_PY, IN_GRAPH, PAD, TOKENIZERS, UNK, WORD_PATTERN_PY
from dlc.runtime.run_folder.files import TOKENIZER as TOKENIZER_FILE, VOCAB as VOCAB_FILE  # (the run's)

KINDS = TOKENIZERS
SUBWORD = tuple(k for k in TOKENIZERS if k not in IN_GRAPH)


@functools.cache
def _lower_table() -> dict[int, str]:
    """Each code point's lowercase, one code point for one (the simple case mapping onnxruntime's
    StringNormalizer applies): U+0130 (I with a dot) -> i, where Python's lower gives two."""
    table = {}
    for c in range(0x110000):
        ch = chr(c)
        low = ch.lower()
        if low != ch and len(low) == 1:
            table[c] = low
    table[0x130] = "i"
    return table


def lowercase(text: str) -> str:
    return text.translate(_lower_table())


@dataclass
class TextEncoder:
    kind: str
    length: int  # L of `input L tokens`: a text keeps its first L tokens
    vocab: list[str] = field(default_factory=list)  # words/chars: the token of each id
    subword: Any = None  # bpe/wordpiece: the Hugging Face Tokenizer
    _index: dict = field(init=False, repr=False)  # token -> id, derived from vocab

    def __post_init__(self):
        self._index = {t: k for k, t in enumerate(self.vocab)}

    # ---- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, kind: str, texts: list[str], rows: int, min_count: int, length: int) -> "TextEncoder":
        """Fitted on `texts` (the training split): at most `rows` ids in all (the embedding's vocab)."""
        if kind in SUBWORD:
            return cls(kind, length, subword=_train_subword(kind, texts, rows, min_count))
        counts = Counter(t for text in texts for t in _split(kind, text))
        kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        return cls(kind, length, [PAD, UNK] + kept[:rows - 2])

    # ---- encoding --------------------------------------------------------------------------------
    def tokens(self, text: str) -> list[str]:
        if self.subword is not None:
            return self.subword.encode(text).tokens
        return _split(self.kind, text)

    def all_ids(self, texts: list[str]) -> list[list[int]]:
        """Every token's id, untruncated (an empty list for a text with no token)."""
        if self.subword is not None:
            return [e.ids for e in self.subword.encode_batch(list(texts))]
        index = self._index
        return [[index.get(t, 1) for t in _split(self.kind, text)] for text in texts]

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, 1, L) float32: each text's ids (its first L; [1], the unknown token, for a text with no
        token), NaN after them -- the padding the engines read as a mask."""
        ids = self.all_ids(texts)
        out = np.full((len(ids), 1, self.length), np.nan, np.float32)
        for k, row in enumerate(ids):  # (a loop over texts: tokenizing is per text anyway)
            row = row[:self.length] or [1]
            out[k, 0, :len(row)] = row
        return out

    def stats(self, texts: list[str]) -> dict:
        """What `dlc check` reports of a split: unknown-token rate, texts cut at L, token counts."""
        ids = self.all_ids(texts)
        counts = np.array([len(r) for r in ids])
        total = int(counts.sum())
        unknown = sum(r.count(1) for r in ids)
        return {"texts": len(ids), "tokens": total, "unknown_rate": unknown / total if total else 0.0,
                "truncated": int((counts > self.length).sum()),
                "median_tokens": float(np.median(counts)) if len(counts) else 0.0,
                "p95_tokens": float(np.percentile(counts, 95)) if len(counts) else 0.0}

    @property
    def size(self) -> int:
        return self.subword.get_vocab_size() if self.subword is not None else len(self.vocab)

    # ---- the run folder --------------------------------------------------------------------------
    def save(self, run_dir: Path, write_text) -> None:
        """vocab.json (and tokenizer.json for a subword tokenizer), written with `write_text(path, text)`."""
        record = {"tokens": self.kind, "length": self.length}
        if self.subword is not None:
            write_text(run_dir / TOKENIZER_FILE, self.subword.to_str())
            record["tokenizer"] = TOKENIZER_FILE
        else:
            record["vocab"] = self.vocab
        write_text(run_dir / VOCAB_FILE, json.dumps(record, ensure_ascii=False))

    @classmethod
    def load(cls, run_dir: Path) -> "TextEncoder | None":
        """The run's encoder, or None when the run has none (not a text run); a damaged file is refused."""
        path = run_dir / VOCAB_FILE
        if not path.exists():
            return None
        from dlc.runtime.data.files import DataError
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            kind, length = record["tokens"], int(record["length"])
            if kind not in KINDS or length < 1:
                raise ValueError(kind)
            if kind in SUBWORD:
                from tokenizers import Tokenizer
                return cls(kind, length, subword=Tokenizer.from_str((run_dir / TOKENIZER_FILE).read_text("utf-8")))
            vocab = record["vocab"]
            if not isinstance(vocab, list) or vocab[:2] != [PAD, UNK] or not all(isinstance(t, str) for t in vocab):
                raise ValueError("vocab")
            return cls(kind, length, vocab)
        except Exception as e:  # noqa: BLE001 - OSError, JSON, a key or type missing, the tokenizer's own errors
            raise DataError(f"{path} is damaged ({type(e).__name__}: {e}); train the run again") from None


def run_encoder(run_dir: Path, spec) -> TextEncoder | None:
    """The tokenizer a run was trained with (None for a model of numbers): what eval, predict, export and a
    resume read, never a refit. A text run whose vocab.json is missing or damaged is refused (a refit would
    give the trained embedding rows other tokens)."""
    if spec.graph.input_dtype != "int64":
        return None
    from dlc.runtime.data.files import DataError
    try:
        encoder = TextEncoder.load(run_dir)
    except DataError as e:
        raise DLError(Diagnostic("error", str(e)), Source("", str(run_dir))) from None
    if encoder is None:
        raise DLError(Diagnostic("error", f"{run_dir} has no {VOCAB_FILE}: a text model needs the vocabulary it was "
                                          "trained with", hint="train the run again"), Source("", str(run_dir)))
    from dlc.runtime.data.text import ids_reader
    rows = ids_reader(spec.graph)["vocab"]
    if encoder.size > rows or encoder.length != spec.graph.input_shape[1]:
        raise DLError(Diagnostic("error", f"{run_dir / VOCAB_FILE} is damaged: {encoder.size:,} ids of {encoder.length} "
                                          f"tokens, but the model's embedding has {rows:,} rows and its input "
                                          f"{spec.graph.input_shape[1]} tokens", hint="train the run again"),
                      Source("", str(run_dir)))
    return encoder


def distinct_tokens(encoder: TextEncoder, texts: list[str]) -> int:
    """How many different tokens `texts` hold (a subword tokenizer: the ids it fitted)."""
    if encoder.subword is not None:
        return encoder.size
    return len({t for text in texts for t in _split(encoder.kind, text)})


def _split(kind: str, text: str) -> list[str]:
    return (_WORDS if kind == "words" else _CHARS).findall(lowercase(text))


_WORDS = re.compile(WORD_PATTERN_PY)
_CHARS = re.compile(CHAR_PATTERN_PY)


def _train_subword(kind: str, texts: list[str], rows: int, min_count: int):
    try:
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    except ImportError:
        from dlc.runtime.data.files import DataError
        raise DataError(f"tokens={kind} needs Hugging Face tokenizers: pip install \"dlc[text]\"") from None
    model = models.BPE(unk_token=UNK) if kind == "bpe" else models.WordPiece(unk_token=UNK)
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    make = trainers.BpeTrainer if kind == "bpe" else trainers.WordPieceTrainer
    tok.train_from_iterator(texts, make(vocab_size=rows, min_frequency=min_count, special_tokens=[PAD, UNK],
                                        show_progress=False))
    return tok
