"""Text runs end to end: train, the vocabulary in the run folder, resume, predict on raw text, the
string-in ONNX model (its class for every text equals dlc's), the subword path, import's refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlc.cli import main
from helpers import stopped_and_resumed

POSITIVE = ["good", "great", "fine", "lovely", "superb", "fun"]
NEGATIVE = ["bad", "awful", "dull", "boring", "weak", "poor"]
FILLER = ["the", "film", "was", "a", "plot", "and", "cast", "very", "truly", "really"]


def _reviews(path, n=240, seed=0):
    """Texts of 1 to 12 words whose class is which of two word lists they draw from (with filler)."""
    rng = np.random.default_rng(seed)
    lines = ["text,label"]
    for k in range(n):
        label = k % 2
        words = list(rng.choice(FILLER, rng.integers(0, 10))) + list(rng.choice(POSITIVE if label else NEGATIVE,
                                                                                  rng.integers(1, 3)))
        rng.shuffle(words)
        lines.append(f'"{" ".join(words).capitalize()}.",{"fresh" if label else "rotten"}')
    path.write_text("\n".join(lines) + "\n")
    return path


SPEC = """model reviews {{
    input 10 tokens
    embedding 8 vocab=40
    residual {{ layernorm; attention heads=2 }}
    globalavgpool
    dense 2 softmax
}}
data "reviews.csv" text=text label=label tokens={tokens}
optimizer adam lr=1e-2
train epochs=4 batch=16 seed=0{engine}
"""


@pytest.fixture
def reviews(tmp_path):
    _reviews(tmp_path / "reviews.csv")
    return tmp_path


def test_a_text_run_keeps_its_vocabulary_predicts_raw_text_and_exports_a_string_in_model(reviews, capsys):
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="words", engine=""))
    assert main(["train", str(spec), "-q", "-o", str(reviews / "run")]) == 0
    vocab = json.loads((reviews / "run" / "vocab.json").read_text())
    assert vocab["tokens"] == "words" and vocab["length"] == 10 and vocab["vocab"][:2] == ["<pad>", "<unk>"]
    capsys.readouterr()
    assert main(["predict", str(reviews / "run"), "--text", "A truly superb, lovely film", "--text", "dull and weak"]) == 0
    out = capsys.readouterr().out
    assert "A truly superb, lovely film\tfresh" in out and "dull and weak\trotten" in out
    assert main(["export", str(reviews / "run"), "-o", str(reviews / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "texts (strings) in, the words tokenizer in the graph" in out and "run alone gives dlc's class" in out
    for data in (str(reviews / "reviews.csv"),):  # every text, through both
        assert main(["predict", str(reviews / "run"), data, "-o", str(reviews / "a.npz"), "--show", "0"]) == 0
        assert main(["predict", str(reviews / "m.onnx"), data, "-o", str(reviews / "b.npz"), "--show", "0"]) == 0
        a, b = np.load(reviews / "a.npz"), np.load(reviews / "b.npz")
        np.testing.assert_array_equal(a["class_index"], b["class_index"])
        np.testing.assert_allclose(a["output"], b["output"], atol=1e-5)
    odd = ["", "zzz qqq", " ".join(["great"] * 30), "Ünïcödé ΣΑΣ!"]  # empty, unknown words, past L, non-ASCII
    assert main(["predict", str(reviews / "run"), *sum((["--text", t] for t in odd), []), "-o", str(reviews / "c.npz")]) == 0
    assert main(["predict", str(reviews / "m.onnx"), *sum((["--text", t] for t in odd), []), "-o", str(reviews / "d.npz")]) == 0
    c, d = np.load(reviews / "c.npz"), np.load(reviews / "d.npz")
    np.testing.assert_array_equal(c["class_index"], d["class_index"])
    np.testing.assert_allclose(c["output"], d["output"], atol=1e-5)
    capsys.readouterr()
    assert main(["import", str(reviews / "m.onnx"), "-o", str(reviews / "back")]) == 2
    assert "its input is a string (a text): dlc import reads models of float32 inputs" in capsys.readouterr().err


@pytest.mark.parametrize("engine, tokens", [("numpy", "words"), ("torch", "words"), ("numpy", "bpe")])
def test_a_stopped_text_run_resumes_bit_for_bit_with_its_vocabulary(reviews, monkeypatch, engine, tokens):
    if tokens == "bpe":
        pytest.importorskip("tokenizers")
    text = SPEC.format(tokens=tokens, engine=f" engine={engine}").replace('"reviews.csv"', f'"{reviews / "reviews.csv"}"')
    full, part, resumed, got, want = stopped_and_resumed(text, reviews, engine, monkeypatch, stop_at_step=20)
    assert part.interrupted and not resumed.interrupted
    for name in ("vocab.json",) + (("tokenizer.json",) if tokens == "bpe" else ()):
        assert (reviews / "run" / name).read_text() == (reviews / "full" / name).read_text()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_a_resumed_run_reads_its_own_vocabulary_not_a_refit(reviews, monkeypatch):
    """The vocabulary is part of the run: a resume tokenizes with the run folder's, never fits another."""
    from dlc.runtime.data import tokenize
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="words", engine="").replace("epochs=4", "epochs=2"))
    assert main(["train", str(spec), "-q", "-o", str(reviews / "run")]) == 0
    spec.write_text(SPEC.format(tokens="words", engine="").replace("epochs=4", "epochs=3"))
    fitted = []
    real = tokenize.TextEncoder.fit.__func__
    monkeypatch.setattr(tokenize.TextEncoder, "fit", classmethod(lambda cls, *a, **k: fitted.append(1) or real(cls, *a, **k)))
    assert main(["train", str(spec), "-q", "-o", str(reviews / "run"), "--resume"]) == 0
    assert fitted == []


def test_the_subword_path_trains_predicts_and_exports_ids_with_its_tokenizer(reviews, capsys):
    pytest.importorskip("tokenizers")
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="bpe", engine="").replace("vocab=40", "vocab=60"))
    assert main(["train", str(spec), "-q", "-o", str(reviews / "run")]) == 0
    assert (reviews / "run" / "tokenizer.json").is_file()
    capsys.readouterr()
    assert main(["predict", str(reviews / "run"), "--text", "A truly superb, lovely film"]) == 0
    assert "\tfresh\t" in capsys.readouterr().out
    assert main(["export", str(reviews / "run"), "-o", str(reviews / "m.onnx")]) == 0
    assert "token ids in (N, L, int64); the bpe tokenizer:" in capsys.readouterr().out
    from tokenizers import Tokenizer
    from dlc.runtime.tools.onnx_runner import OnnxModel
    tok = Tokenizer.from_file(str(reviews / "m.tokenizer.json"))
    ids = np.array([tok.encode("a truly superb, lovely film").ids[:10]], np.int64)  # its first L ids
    out = OnnxModel.load(reviews / "m.onnx").session.run(["output"], {"input": ids})[0]
    assert main(["predict", str(reviews / "run"), "--text", "a truly superb, lovely film", "-o", str(reviews / "p.npz")]) == 0
    np.testing.assert_allclose(np.load(reviews / "p.npz")["output"], out, atol=1e-5)


def test_search_ranges_on_the_length_dim_vocab_and_heads_of_a_text_model(reviews, capsys):
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="words", engine="").replace("input 10 tokens", "input choice(6, 10) tokens")
                    .replace("embedding 8 vocab=40", "embedding choice(4, 8) vocab=choice(20, 40)")
                    .replace("heads=2", "heads=choice(1, 2)").replace("epochs=4", "epochs=1"))
    assert main(["search", str(spec), "--trials", "3", "--jobs", "1", "-o", str(reviews / "search"), "-q"]) == 0
    best = (reviews / "search" / "best.dl").read_text()
    assert "choice(" not in best and " tokens" in best
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("rank"))
    for key in ("input.length", "embedding1.dim", "embedding1.vocab", "residual1.attention1.heads"):
        assert key in header


def test_diagnose_runs_its_checks_on_a_text_model(reviews, capsys):
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="words", engine=""))
    main(["diagnose", str(spec), "-o", str(reviews / "diag")])
    out = capsys.readouterr().out
    assert "[  OK] initial loss" in out and "[  OK] overfit 20 samples" in out
    assert "through time" not in out  # (token ids have no gradient to measure)


def test_eval_of_a_string_in_onnx_model_points_to_predict(reviews, capsys):
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="chars", engine="").replace("epochs=4", "epochs=1"))
    assert main(["train", str(spec), "-q", "-o", str(reviews / "run")]) == 0
    assert main(["export", str(reviews / "run"), "-o", str(reviews / "m.onnx")]) == 0
    capsys.readouterr()
    assert main(["eval", str(reviews / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "takes texts (its input is tensor(string))" in err and "dlc predict" in err


def test_wordpiece_fits_and_encodes_with_the_special_ids_first():
    pytest.importorskip("tokenizers")
    from dlc.runtime.data.tokenize import TextEncoder
    enc = TextEncoder.fit("wordpiece", ["the film was great", "the plot was dull"] * 10, rows=40, min_count=1, length=6)
    assert enc.subword.token_to_id("<pad>") == 0 and enc.subword.token_to_id("<unk>") == 1
    x = enc.encode(["The film was DULL", "great"])
    assert x.shape == (2, 1, 6) and np.isnan(x[1, 0, -1]) and np.all(x[~np.isnan(x)] >= 2)


def test_int8_export_refuses_a_text_model_and_serving_measures_it_in_float(reviews, capsys):
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="words", engine="").replace("epochs=4", "epochs=1"))
    assert main(["train", str(spec), "-q", "-o", str(reviews / "run")]) == 0
    capsys.readouterr()
    assert main(["export", str(reviews / "run"), "-o", str(reviews / "q.onnx"), "--int8"]) == 2
    assert "is a text model: export --int8 quantizes models of numbers" in capsys.readouterr().err
    assert not (reviews / "q.onnx").exists()
    assert main(["check", str(spec), "--serving"]) == 0
    assert "ms per text of L token ids at batch 1 / 64): float" in capsys.readouterr().out


def test_compare_tokenizes_the_data_for_each_text_model(reviews, capsys):
    a, b = reviews / "a.dl", reviews / "b.dl"
    a.write_text(SPEC.format(tokens="words", engine="").replace("epochs=4", "epochs=1"))
    b.write_text(SPEC.format(tokens="words", engine="").replace("epochs=4", "epochs=1")
                 .replace("input 10 tokens", "input 6 tokens").replace("vocab=40", "vocab=30"))
    assert main(["compare", str(a), str(b), "-o", str(reviews / "cmp")]) == 0
    assert "length=6, vocab=30" in capsys.readouterr().out


def test_a_folder_of_texts_trains_and_a_run_refuses_it_once_changed(tmp_path, capsys):
    for cls, words in (("neg", "bad dull"), ("pos", "great fine")):
        (tmp_path / "texts" / cls).mkdir(parents=True)
        for k in range(20):
            (tmp_path / "texts" / cls / f"{k}.txt").write_text(f"{words} film number {k}")
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC.format(tokens="words", engine="").replace('"reviews.csv" text=text label=label', '"texts"'))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0
    assert main(["eval", str(tmp_path / "run")]) == 0
    (tmp_path / "texts" / "pos" / "3.txt").write_text("changed")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run")]) == 2
    assert "changed since this run was trained (its .txt files: sha256" in capsys.readouterr().err


def test_the_vocabulary_files_are_the_run_s_own(reviews, capsys):
    """Overwriting a text run with a model of numbers removes its vocabulary; a user's file of that name in a
    new run folder is refused, never overwritten."""
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="words", engine="").replace("epochs=4", "epochs=1"))
    assert main(["train", str(spec), "-q", "-o", str(reviews / "run")]) == 0
    numbers = reviews / "n.dl"
    numbers.write_text("model n {\n input 2\n dense 3 softmax\n}\ndata spiral\ntrain epochs=1\n")
    assert main(["train", str(numbers), "-q", "-o", str(reviews / "run"), "--overwrite"]) == 0
    assert not (reviews / "run" / "vocab.json").exists()
    (reviews / "mine").mkdir()
    (reviews / "mine" / "vocab.json").write_text("my notes")
    capsys.readouterr()
    assert main(["train", str(spec), "-q", "-o", str(reviews / "mine")]) == 2
    assert (reviews / "mine" / "vocab.json").read_text() == "my notes"


def test_the_string_in_model_takes_a_batch_and_runs_each_text_at_its_own_length(reviews):
    """A batch of texts of different lengths through the exported model equals each text run alone."""
    from dlc.runtime.tools.onnx_runner import OnnxModel
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="words", engine="").replace("epochs=4", "epochs=2"))
    assert main(["train", str(spec), "-q", "-o", str(reviews / "run")]) == 0
    assert main(["export", str(reviews / "run"), "-o", str(reviews / "m.onnx")]) == 0
    session = OnnxModel.load(reviews / "m.onnx").session
    texts = ["great", "", "the film was dull and the plot was poor and weak", "a truly lovely film", "zzz"]
    batch = session.run(None, {"text": np.array(texts, dtype=object)})
    alone = [session.run(None, {"text": np.array([t], dtype=object)}) for t in texts]
    np.testing.assert_array_equal(batch[0], np.concatenate([a[0] for a in alone]))
    np.testing.assert_array_equal(batch[1], np.concatenate([a[1] for a in alone]))


def test_a_text_run_without_its_vocabulary_is_refused_never_refitted(reviews, capsys):
    """A resume (or eval) of a text run whose vocab.json is gone: a refit would give the trained embedding
    rows other tokens, so it is refused by name."""
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="words", engine="").replace("epochs=4", "epochs=1"))
    assert main(["train", str(spec), "-q", "-o", str(reviews / "run")]) == 0
    (reviews / "run" / "vocab.json").unlink()
    spec.write_text(SPEC.format(tokens="words", engine="").replace("epochs=4", "epochs=2"))
    capsys.readouterr()
    for args in (["train", str(spec), "-q", "-o", str(reviews / "run"), "--resume"], ["eval", str(reviews / "run")]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "has no vocab.json: a text model needs the vocabulary it was trained with" in err, err


def test_train_reads_and_tokenizes_the_texts_once(reviews, monkeypatch):
    """dlc check's survey of the texts (read, split, vocabulary fitted, encoded) is what training trains on."""
    from dlc.runtime.data import text
    reads = []
    real = text.load_texts
    monkeypatch.setattr(text, "load_texts", lambda *a, **k: reads.append(1) or real(*a, **k))
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="words", engine="").replace("epochs=4", "epochs=1"))
    assert main(["train", str(spec), "-q", "-o", str(reviews / "run")]) == 0
    assert reads == [1]


def test_a_vocabulary_that_does_not_fit_the_model_is_refused(reviews, capsys):
    """(an edited vocab.json with more ids than the embedding has rows was an internal error in predict)"""
    import json as _json
    spec = reviews / "s.dl"
    spec.write_text(SPEC.format(tokens="words", engine="").replace("epochs=4", "epochs=1"))
    assert main(["train", str(spec), "-q", "-o", str(reviews / "run")]) == 0
    vocab = _json.loads((reviews / "run" / "vocab.json").read_text())
    vocab["vocab"] += [f"extra{k}" for k in range(50)]
    (reviews / "run" / "vocab.json").write_text(_json.dumps(vocab))
    capsys.readouterr()
    assert main(["predict", str(reviews / "run"), "--text", "extra3 extra40"]) == 2
    assert "vocab.json is damaged: " in capsys.readouterr().err
