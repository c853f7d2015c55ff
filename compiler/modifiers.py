"""What a layer line (and a group's closing `}`) may carry besides the op and its own keys -- the one list
the graph pass, `dlc fmt`, the editor's completion and the quick fixes read -- in the order dlc applies
them, which is the order `dlc fmt` writes them: the op's values and keys, `batchnorm`, the activation
(with its keys), `layernorm`, `dropout=`/`keep=`, `frozen`."""

from __future__ import annotations

NORMALIZE = "batchnorm"  # a word, and the op it adds: batchnorm between the op and its activation
LAYER_NORM = "layernorm"  # a word, and the op it adds: layernorm after the activation (before dropout)
DROPOUT = "dropout"  # the op dropout=/keep= add after the activation
DROPOUT_KEYS = ("dropout", "keep")  # a key: dropout=P; keep= is 1 - dropout
FROZEN = "frozen"  # a word: the line's (or group's, or block use's) parameters stay as they start
VARIABLE = "variable"  # a word of the input line: input CxL variable, series of 1 to L steps
TOKENS = "tokens"  # a word of the input line: input L tokens, a text's token ids (1 to L of them)
TOKENS_DOC = ("**tokens** (input): `input L tokens` takes texts as token ids, 1 to L of them (longer texts "
              "are cut at L): a sequence 1xL of int64 ids for an `embedding` (id 0 pads, 1 is the unknown token)")
VARIABLE_DOC = ("**variable** (input): `input CxL variable` takes series of 1 to L steps; a batch pads them "
                "(NaN after each series's last step) and every op sees each series at its own length")


def words(activations) -> list[str]:
    """What may follow a layer's values, for completion: the activations, batchnorm, layernorm, the dropout
    keys, frozen."""
    return sorted(set(activations) | {NORMALIZE, LAYER_NORM, FROZEN} | {f"{k}=" for k in DROPOUT_KEYS})
