"""Text data: CSV/TSV/JSONL columns and folders of .txt files, refused at the data line when bad; the
tokenizers and their vocabulary (fitted on the training split only); the string-in ONNX front runs the
Python tokenizer's rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlc.cli import main
from dlc.runtime.data.files import DataError
from dlc.runtime.data.text import read_texts
from dlc.runtime.data.tokenize import TextEncoder, lowercase

MODEL = "model m {\n input 8 tokens\n embedding 4 vocab=50\n globalavgpool\n dense 2 softmax\n}\n"


def _csv(path, rows, header="text,label"):
    path.write_text(header + "\n" + "".join(f'"{t}",{y}\n' for t, y in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_each_table_format_gives_the_texts_and_labels(tmp_path, suffix):
    rows = [("Great film, truly", "fresh"), ("dull; slow", "rotten"), ('a "quoted" word', "fresh")]
    path = tmp_path / f"r{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps({"review": t, "y": y}) + "\n" for t, y in rows))
    else:
        sep = "," if suffix == ".csv" else "\t"
        path.write_text(f"review{sep}y\n" + "".join(
            (f'"{t.replace(chr(34), chr(34) * 2)}"' if sep == "," else t) + f"{sep}{y}\n" for t, y in rows))
    got = read_texts(path, "review", "y")
    assert (got.texts, got.labels) == ([t for t, _ in rows], [y for _, y in rows])


def test_a_folder_of_class_folders_of_txt_files(tmp_path):
    for cls, texts in {"neg": ["bad", "awful"], "pos": ["good"]}.items():
        (tmp_path / cls).mkdir()
        for k, t in enumerate(texts):
            (tmp_path / cls / f"{k}.txt").write_text(t)
    got = read_texts(tmp_path, None, None)
    assert (got.texts, got.labels) == (["bad", "awful", "good"], ["neg", "neg", "pos"])


@pytest.mark.parametrize("content, data_keys, message", [
    ("text,label\n\"fine\",a\n\"ok\",b\n", "text=review", "has no text column 'review'; expected one of: label, text"),
    ("text,label\n\"fine\",a\n\"  \",b\n", "", "r.csv:3, column 'text': an empty text"),
    ("text,label\n\"fine\",a\n\"ok\",\n", "", "r.csv:3: an empty label (column 'label')"),
    (b"text,label\n\"caf\xe9\",a\n", "", "r.csv:2: not UTF-8 text (byte 0xe9 at offset 15)"),
    ("text,label\n\"" + "x" * (1 << 20 | 1) + "\",a\n", "", "r.csv:2, column 'text': a text of 1,048,577 bytes"),
    ("text,label\n\"" + "x" * (3 << 20) + "\",a\n", "", "r.csv:2: field larger than field limit"),
])
def test_bad_text_files_are_refused_at_the_data_line(tmp_path, capsys, content, data_keys, message):
    data = tmp_path / "r.csv"
    data.write_bytes(content if isinstance(content, bytes) else content.encode())
    spec = tmp_path / "s.dl"
    spec.write_text(MODEL + f'data "r.csv" {data_keys}\n')
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:7:6: error:" in err and message in err, err


def test_a_text_column_for_a_model_of_numbers_is_refused(tmp_path, capsys):
    _csv(tmp_path / "r.csv", [("a b", "x"), ("c", "y")])
    spec = tmp_path / "s.dl"
    spec.write_text('model m {\n input 4\n dense 2 softmax\n}\ndata "r.csv" text=text\n')
    assert main(["check", str(spec)]) == 2
    assert "s.dl:5:14: error: text= is for texts, but the model's input is 4 numbers" in capsys.readouterr().err


def test_a_jsonl_line_that_is_not_an_object_names_its_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"r.jsonl:2: each line must be a JSON object"):
        read_texts(path, None, None)


# ---- tokenizers -------------------------------------------------------------------------------------
def test_words_are_lowercased_unicode_runs_and_the_vocabulary_is_the_training_texts():
    train = ["Le café, c'est naïf!", "CAFÉ au lait; lait 42", "the_end  ok"]
    enc = TextEncoder.fit("words", train, rows=50, min_count=1, length=4)
    assert enc.tokens("Le CAFÉ, c'est naïf!") == ["le", "café", "c'est", "naïf"]
    assert enc.vocab[:4] == ["<pad>", "<unk>", "café", "lait"]  # by count, then by token
    x = enc.encode(["café unseen LAIT", "", "a b c d e f", "le"])
    assert x.shape == (4, 1, 4)
    np.testing.assert_array_equal(x[0, 0, :3], [2, 1, 3])  # an unseen word is the unknown id
    np.testing.assert_array_equal(x[1, 0, :1], [1])  # no token at all: one unknown token
    assert np.isnan(x[1, 0, 1:]).all() and not np.isnan(x[2, 0]).any()  # cut at L=4
    assert enc.stats(["café unseen", "a b c d e"])["truncated"] == 1


def test_min_count_and_the_embedding_rows_bound_the_vocabulary():
    train = ["a a a b b c", "a b d"]
    assert TextEncoder.fit("words", train, rows=50, min_count=2, length=5).vocab == ["<pad>", "<unk>", "a", "b"]
    assert TextEncoder.fit("words", train, rows=3, min_count=1, length=5).vocab == ["<pad>", "<unk>", "a"]


def test_characters_keep_spaces_and_punctuation_but_not_newlines():
    enc = TextEncoder.fit("chars", ["Ab, c\nd"], rows=50, min_count=1, length=10)
    assert enc.tokens("Ab, c\nd") == ["a", "b", ",", " ", "c", "d"]


def test_lowercase_maps_each_code_point_on_its_own():
    assert lowercase("ΣΑΣ İSTANBUL Ǆ") == "σασ istanbul ǆ"  # no final sigma, İ -> i (one code point each)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["words", "chars"])
def test_the_onnx_front_tokenizes_every_code_point_as_python_does(kind):
    """StringNormalizer + Tokenizer + LabelEncoder in onnxruntime against tokenize.py on text made of every
    assigned code point of the Basic Multilingual Plane (in words of 5, separated by spaces and
    punctuation): the same ids, token for token."""
    import unicodedata

    import onnx
    from onnx import TensorProto, helper
    from dlc.compiler.onnx_export import OnnxBuilder
    from dlc.compiler.onnx_text import TEXT_OPSETS, text_front
    from dlc.runtime.tools.onnx_runner import OnnxModel
    chars = [chr(c) for c in range(0x21, 0x10000) if unicodedata.category(chr(c)) not in ("Cs", "Co", "Cn", "Cc")]
    texts = [" ".join("".join(chars[i + j:i + j + 5]) for j in range(0, 400, 5)) + " ,x.'y" for i in range(0, len(chars), 400)]
    enc = TextEncoder.fit(kind, texts, rows=10 ** 6, min_count=1, length=10 ** 5)
    g = OnnxBuilder()
    ids = text_front(g, "text", kind, enc.vocab, enc.length)
    graph = helper.make_graph(g.nodes, "front", [helper.make_tensor_value_info("text", TensorProto.STRING, [1])],
                              [helper.make_tensor_value_info(ids, TensorProto.INT64, [1, None])],
                              initializer=list(g.initializers.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)] +
                              [helper.make_opsetid(d, v) for d, v in TEXT_OPSETS.items()])
    onnx.checker.check_model(model)
    runner = OnnxModel(model)
    for text in texts + ["", "!!!", "Ünïcödé ΣΑΣ x"]:
        want = [int(i) for i in enc.encode([text])[0, 0] if not np.isnan(i)]
        got = runner.run_texts([text])[ids][0].tolist()
        assert got == want, text[:80]


@pytest.mark.parametrize("model, texts, code, message", [
    (MODEL.replace("vocab=50", "vocab=500"), ["a b c", "b c d"] * 20, "DL119",
     "embedding vocab=500, but the training texts hold 4 distinct tokens, so 494 rows are unused"),
    (MODEL, [" ".join("w%d" % k for k in range(12))] * 40, "DL120", "input 8 tokens cuts 28 of the 28 training texts"),
])
def test_text_lints_from_the_training_texts(tmp_path, capsys, model, texts, code, message):
    _csv(tmp_path / "r.csv", [(t, "xy"[k % 2]) for k, t in enumerate(texts)])
    spec = tmp_path / "s.dl"
    spec.write_text(model + 'data "r.csv"\n')
    assert main(["check", str(spec)]) == 0
    out = capsys.readouterr().out
    assert f"warning: [{code}] {message}" in out, out
    spec.write_text(model.replace("tokens\n", f"tokens  # dlc: ignore {code}\n").replace(
        "vocab=500\n", f"vocab=500  # dlc: ignore {code}\n") + 'data "r.csv"\n')
    assert main(["check", str(spec)]) == 0
    assert code not in capsys.readouterr().out


def test_check_reports_the_texts_and_their_vocabulary(tmp_path, capsys):
    _csv(tmp_path / "r.csv", [("Good film", "a"), ("bad film", "b")] * 20 + [("unseen words here", "a")])
    spec = tmp_path / "s.dl"
    spec.write_text(MODEL + 'data "r.csv" test=0.2\n')
    assert main(["check", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "texts: 32 for training and validation from r.csv (2 classes), tokens=words" in out
    assert "vocabulary: " in out and "ids of the embedding's 50" in out
    assert "input 8 tokens cuts 0 of" in out and "% of its" in out


@pytest.mark.parametrize("spec, message, col", [
    (MODEL + "data digits\n", "input 8 tokens reads texts, but digits is not a file of texts", 6),
    (MODEL + 'data "r.csv" standardize\n', "standardize does not apply to texts", 14),
    ("model m {\n input 4\n dense 3 softmax\n}\ndata iris tokens=chars\n", "tokens= is for texts, but the model's "
     "input is 4 numbers", 11),
])
def test_texts_and_numbers_do_not_mix_on_the_data_line(tmp_path, capsys, spec, message, col):
    path = tmp_path / "s.dl"
    path.write_text(spec)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f":{spec.count(chr(10))}:{col}: error: {message}" in err, err


def test_a_header_without_rows_is_refused(tmp_path):
    (tmp_path / "e.csv").write_text("text,label\n")
    with pytest.raises(DataError, match=r"e.csv holds no texts: a header and no rows"):
        read_texts(tmp_path / "e.csv", None, None)


def test_an_input_of_no_tokens_is_refused_at_its_length(tmp_path, capsys):
    spec = tmp_path / "s.dl"
    spec.write_text(MODEL.replace("input 8 tokens", "input 0 tokens"))
    assert main(["check", str(spec)]) == 2
    assert "s.dl:2:8: error: input L tokens: a text needs room for at least 1 token" in capsys.readouterr().err


def test_texts_for_a_model_of_numbers_are_refused_by_predict(spiral_run, capsys):
    assert main(["predict", str(spiral_run), "--text", "hello"]) == 2
    assert "texts are for a text model (input L tokens); this model's input is 2 numbers" in capsys.readouterr().err


def test_check_and_the_picture_show_the_input_as_token_ids(tmp_path, capsys):
    spec = tmp_path / "s.dl"
    spec.write_text(MODEL)
    assert main(["check", str(spec), "--graph", str(tmp_path / "g.mmd")]) == 0
    out = capsys.readouterr().out
    assert "model m: input 8 tokens -> output 2" in out and " 8 token ids " in out
    assert "input 8 tokens<br/>8 token ids" in (tmp_path / "g.mmd").read_text()
    assert main(["check", str(spec), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["input_dtype"], data["layers"][0]["dtype"], data["layers"][1]["dtype"]) == ("int64", "int64", "float32")


@pytest.mark.parametrize("model, message, where", [
    (MODEL.replace(" embedding 4 vocab=50\n", ""), "globalavgpool reads numbers, but its input is token ids "
     "(input L tokens)", ":3:2:"),
    ("model m {\n input 3x8\n embedding 4 vocab=50\n globalavgpool\n dense 2 softmax\n}\n",
     "embedding reads token ids, but its input is float32 values", ":3:2:"),
    (MODEL.replace("input 8 tokens", "input 3x8 tokens"), "'tokens' takes one length: input L tokens", ":2:12:"),
    (MODEL.replace("globalavgpool", "attention heads=3\n globalavgpool"), "attention heads=3 must divide the 4 "
     "channels it reads", ":4:2:"),
])
def test_located_refusals_of_a_text_model(tmp_path, capsys, model, message, where):
    spec = tmp_path / "s.dl"
    spec.write_text(model)
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"s.dl{where} error: {message}" in err, err


@pytest.mark.parametrize("name, content, message", [
    ("r.jsonl", '{"text": "a", "label": "x"}\n{"text": "b",\n', "r.jsonl:2: not a JSON object (Expecting"),
    ("r.csv", 'text,label\n"a",x,extra\n', "r.csv:2: 3 fields, but the header has 2"),
    ("r.txt", "a text", "texts are read from .csv, .tsv or .jsonl files, or a folder of class folders of .txt "
     "files; got .txt"),
    ("r.csv", 'review,y\n"a",x\n', "r.csv has no column 'label'; name the label column: label=COLUMN "
     "(its columns are: review, y)"),
])
def test_bad_text_sources_are_refused_at_the_data_line(tmp_path, capsys, name, content, message):
    (tmp_path / name).write_text(content)
    spec = tmp_path / "s.dl"
    keys = " text=review" if "review" in content else ""
    spec.write_text(MODEL + f'data "{name}"{keys}\n')
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "s.dl:7:6: error:" in err and message in err, err


def test_a_folder_without_txt_files_and_a_damaged_vocabulary_are_refused(tmp_path, capsys):
    (tmp_path / "texts" / "a").mkdir(parents=True)
    (tmp_path / "texts" / "a" / "x.md").write_text("not a .txt")
    spec = tmp_path / "s.dl"
    spec.write_text(MODEL + 'data "texts"\n')
    assert main(["check", str(spec)]) == 2
    assert "texts: no .txt files in its class folders" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "vocab.json").write_text('{"tokens": "words", "length": 8, "vocab": ["x"]}')
    from dlc.runtime.data.tokenize import TextEncoder
    with pytest.raises(DataError, match=r"vocab.json is damaged \(ValueError: vocab\); train the run again"):
        TextEncoder.load(tmp_path / "run")


def test_predict_refuses_data_and_text_together_and_neither(spiral_run, capsys):
    assert main(["predict", str(spiral_run), "spiral", "--text", "a"]) == 2
    assert "give DATA or --text, not both" in capsys.readouterr().err
    assert main(["predict", str(spiral_run)]) == 2
    assert "nothing to predict for: give DATA (a data set or file)" in capsys.readouterr().err


def test_a_text_model_refuses_what_is_not_text(tmp_path, capsys):
    (tmp_path / "r.csv").write_text("text,label\n" + "".join(f'"w{k % 5} w{k % 3}",{"xy"[k % 2]}\n' for k in range(40)))
    spec = tmp_path / "s.dl"
    spec.write_text(MODEL + 'data "r.csv"\ntrain epochs=1\n')
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0
    import dlc
    with pytest.raises(dlc.DLError, match=r"a text model predicts for texts: give a file of texts or a list of strings"):
        dlc.predict(tmp_path / "run", [1.0, 2.0])
