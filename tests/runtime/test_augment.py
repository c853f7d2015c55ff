"""augment: each operation's formula on small arrays, training batches only (never validation, test,
eval or export), reproducible from the seed, resume after Ctrl-C bit-identical, the refusals, the
preview, and DL115."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc.cli import main
from dlc.runtime import run_folder as rf
from dlc.runtime.data.augment import Augment
from dlc.runtime.numpy_engine.engine import NumpyEngine
from dlc.runtime.trainer import train

CNN = """model small {{
    input 1x8x8
    conv 8 kernel=3 pad=same batchnorm relu
    maxpool 2
    flatten
    dense 10 softmax dropout=0.0
}}
data digits test=0.2 scale=1/16
augment {augment}
train epochs={epochs} batch=64 seed=3
"""


def _aug(**values) -> Augment:
    return Augment(values, 0.0, 10.0, np.full((1, 1, 1), 5.0, np.float32))


def _images(n=4, side=6):
    return np.random.default_rng(0).uniform(0, 10, (n, 1, side, side)).astype(np.float32)


def test_flip_x_mirrors_about_half_the_images_exactly():
    x = _images(200)
    out = _aug(flip_x=True)(x, np.random.default_rng(1))
    mirrored = np.array([np.array_equal(o, a[..., ::-1]) for o, a in zip(out, x)])
    kept = np.array([np.array_equal(o, a) for o, a in zip(out, x)])
    assert np.all(mirrored | kept) and 80 <= mirrored.sum() <= 120


def test_crop_shifts_by_whole_pixels_and_fills_with_the_training_mean():
    x = _images(50)
    out = _aug(crop=2)(x, np.random.default_rng(2))
    for o, a in zip(out, x):  # each output is the input moved by (dy, dx) in [-2, 2], the fill elsewhere
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(o[0, max(dy, 0):6 + min(dy, 0), max(dx, 0):6 + min(dx, 0)],
                                   a[0, max(-dy, 0):6 - max(dy, 0), max(-dx, 0):6 - max(dx, 0)])]
        assert found
        dy, dx = found[0]
        mask = np.ones((6, 6), bool)
        mask[max(dy, 0):6 + min(dy, 0), max(dx, 0):6 + min(dx, 0)] = False
        assert np.all(o[0][mask] == 5.0)


def test_rotating_by_a_right_angle_turns_the_image():
    x = _images(1)
    aug = _aug(rotate=90)
    out = aug._rotate(x, np.array([np.pi / 2]))
    assert np.allclose(out[0, 0], np.rot90(x[0, 0], k=1), atol=1e-4) or \
        np.allclose(out[0, 0], np.rot90(x[0, 0], k=-1), atol=1e-4)
    assert np.allclose(aug._rotate(x, np.array([0.0])), x, atol=1e-6)


def test_brightness_contrast_noise_and_cutout_follow_their_formulas():
    x = _images(300)
    b = _aug(brightness=0.1)(x, np.random.default_rng(3)) - x
    per = b.reshape(300, -1)
    unclipped = (x.reshape(300, -1).min(1) > 1) & (x.reshape(300, -1).max(1) < 9)
    assert np.all(np.abs(per) <= 1.0 + 1e-6)  # b * R with |b| <= 0.1 and R = 10
    c = _aug(contrast=0.3)(x, np.random.default_rng(4))
    assert np.allclose(c[unclipped].mean(axis=(1, 2, 3)), x[unclipped].mean(axis=(1, 2, 3)), atol=1e-4)
    big = np.full((20, 1, 40, 40), 5.0, np.float32)
    e = _aug(noise=0.05)(big, np.random.default_rng(5)) - big
    assert abs(e.std() - 0.5) < 0.01  # std S * R = 0.05 * 10
    square = _aug(cutout=3)(x + 100, np.random.default_rng(6))  # (values past the fill, so the square shows)
    filled = (square == 5.0).reshape(300, -1).sum(1)
    assert filled.max() == 9 and filled.min() >= 1  # 3x3 inside, less where it reaches past the border


def _run(tmp_path, augment="flip_x crop=1 rotate=10 brightness=0.1 contrast=0.2 noise=0.02 cutout=2", epochs=4,
         name="run", **kw):
    return train(dlc.compile(CNN.format(augment=augment, epochs=epochs)), out=tmp_path / name, progress=False, **kw)


def test_only_training_batches_are_augmented(tmp_path, monkeypatch):
    sizes = []
    real = Augment.__call__
    monkeypatch.setattr(Augment, "__call__", lambda self, x, rng: (sizes.append(len(x)), real(self, x, rng))[1])
    result = _run(tmp_path, epochs=2)
    n = result.metrics["samples"]["train"]
    assert sizes == [min(64, n - i) for i in range(0, n, 64)] * 2
    with monkeypatch.context():
        sizes.clear()
        assert main(["eval", str(result.run_dir)]) == 0
        assert main(["export", str(result.run_dir), "-o", str(tmp_path / "m.onnx")]) == 0
    assert sizes == []


def test_augmented_runs_are_reproducible_and_differ_from_plain_ones(tmp_path):
    a, b = _run(tmp_path, name="a"), _run(tmp_path, name="b")
    plain = _run(tmp_path, augment="", name="plain")
    wa, wb, wp = (rf.load_npz(r.run_dir / "weights.npz") for r in (a, b, plain))
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert not all(np.array_equal(wa[k], wp[k]) for k in wa)


@pytest.mark.parametrize("step", [5, 23, 40])
def test_ctrl_c_mid_epoch_then_resume_is_bit_identical(tmp_path, monkeypatch, step):
    full = _run(tmp_path, name="full")
    real = NumpyEngine.step
    calls = {"n": 0}

    def interrupting(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(NumpyEngine, "step", interrupting)
        assert _run(tmp_path, name="part").interrupted
    resumed = _run(tmp_path, name="part", resume=True)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    wf, wr = rf.load_npz(full.run_dir / "weights.npz"), rf.load_npz(resumed.run_dir / "weights.npz")
    assert all(np.array_equal(wf[k], wr[k]) for k in wf)


@pytest.mark.parametrize("augment, message", [
    ("flip_x crop=8", "6:16: error: augment crop=8 is as large as the 8x8 image"),
    ("cutout=9", "6:9: error: augment cutout=9 is as large as the 8x8 image"),
    ("rotate=200", "6:16: error: rotate=200 is out of range"),
    ("flip", "6:9: error: unexpected 'flip' in augment"),
])
def test_an_augment_line_that_cannot_work_is_refused_where_it_is_written(tmp_path, capsys, augment, message):
    path = tmp_path / "s.dl"
    path.write_text(f"model m {{\n    input 1x8x8\n    flatten\n    dense 10 softmax\n}}\naugment {augment}\ndata digits\n")
    assert main(["check", str(path)]) == 2
    assert f"{path}:{message}" in capsys.readouterr().err


def test_image_operations_on_a_vector_input_are_refused(tmp_path, capsys):
    path = tmp_path / "v.dl"
    path.write_text("model m {\n    input 64\n    dense 10 softmax\n}\ndata digits\naugment noise=0.1 flip_x\n")
    assert main(["check", str(path)]) == 2
    assert f"{path}:6:19: error: augment flip_x works on images, but the model's input is 64" in capsys.readouterr().err


def test_check_shows_the_augment_line_and_set_and_search_reach_its_keys(tmp_path, capsys):
    path = tmp_path / "a.dl"
    path.write_text(CNN.format(augment="flip_x crop=1", epochs=1))
    assert main(["check", str(path), "--set", "augment.rotate=15", "--set", "augment.noise=loguniform(0.01, 0.1)"]) == 0
    out = capsys.readouterr().out
    assert "augment (training batches only, seeded by the train seed): flip_x crop=1 rotate=15 " \
           "noise=loguniform(0.01, 0.1)" in out
    assert "search ranges: augment.noise=loguniform(0.01, 0.1)" in out


def test_the_preview_draws_the_augmented_images_and_needs_an_augment_line(tmp_path, capsys):
    path = tmp_path / "a.dl"
    path.write_text(CNN.format(augment="flip_x crop=1 rotate=10", epochs=1))
    assert main(["check", str(path), "--augment-preview", str(tmp_path / "p.png")]) == 0
    from PIL import Image
    with Image.open(tmp_path / "p.png") as im:
        assert im.format == "PNG" and im.size[0] > 400
    path.write_text(CNN.format(augment="", epochs=1))
    assert main(["check", str(path), "--augment-preview", str(tmp_path / "q.png")]) == 2
    assert "--augment-preview: the spec has no augment line" in capsys.readouterr().err
    assert main(["check", str(path), "--augment-preview", str(tmp_path / "q.jpg")]) == 2
    assert "--augment-preview " + str(tmp_path / "q.jpg") + ": the preview is a .png picture" in capsys.readouterr().err


def test_dl115_warns_about_augmenting_standardized_pixels():
    spec = dlc.compile(CNN.format(augment="flip_x", epochs=1).replace("scale=1/16", "standardize"))
    assert [(d.code, d.span.line) for d in spec.warnings] == [("DL115", 8)]


def test_vary_trains_each_augment_setting_on_the_shared_split(tmp_path, capsys):
    path = tmp_path / "v.dl"
    path.write_text(CNN.format(augment="crop=1", epochs=2))
    assert main(["train", str(path), "--vary", "augment.rotate=0,20", "-o", str(tmp_path / "runs"), "-q"]) == 0
    import csv
    with open(tmp_path / "runs" / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["rotate=0", "rotate=20"]
    assert rows[0]["train_loss"] != rows[1]["train_loss"]  # each run its own augment line
