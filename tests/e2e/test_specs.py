"""Every spec in specs/ checks clean; every spec in specs/bad/ fails with its `# expect:` lines."""

import json
import re
import subprocess
import sys

import pytest

from dlc.cli import main

from conftest import ROOT, SHARED_DATA, reads_shared_data  # noqa: E402

pytestmark = pytest.mark.usefixtures("digit_pngs")  # specs/digits_images.dl reads them
GOOD = sorted(ROOT.glob("specs/*.dl")) + sorted(ROOT.glob("specs/experiments/*.dl"))
BAD = sorted(ROOT.glob("specs/bad/*.dl"))


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_spec_checks(path, capsys):
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "total:" in out and "ok," in out


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_spec_is_rejected_with_its_message(path, capsys):
    expects = [line.split("expect:", 1)[1].strip() for line in path.read_text().splitlines()
               if line.startswith("# expect:")]
    assert expects, f"{path.name} has no '# expect:' line"
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for e in expects:
        assert f"{path}:{e}" in err or (e.startswith("error:") and e in err), f"missing {e!r} in:\n{err}"
    # every error line shows the source line and a caret
    n_errors = len(re.findall(r"^\S+:\d+:\d+: error:", err, re.M))
    assert err.count("^") >= n_errors


def test_error_output_has_caret_under_the_word(capsys):
    main(["check", str(ROOT / "specs/bad/typo_activation.dl")])
    lines = capsys.readouterr().err.splitlines()
    src, caret = lines[1], lines[2]
    assert src.strip() == "dense 32 rleu"
    assert caret.index("^") == src.index("rleu") and caret.count("^") == 4
    assert lines[3] == "  hint: did you mean 'relu' or 'rrelu' or 'prelu'?"


def test_cli_subprocess_exit_code_and_no_traceback():
    r = subprocess.run([sys.executable, "-m", "dlc", "check", str(ROOT / "specs/bad/dense_after_conv.dl")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "dense expects a feature vector" in r.stderr


def test_debug_flag_shows_traceback():
    r = subprocess.run([sys.executable, "-m", "dlc", "--debug", "check", str(ROOT / "specs/bad/unknown_layer.dl")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_missing_file(capsys):
    assert main(["check", "no/such/spec.dl"]) == 2
    assert "no such file: no/such/spec.dl" in capsys.readouterr().err


def test_json_summary(capsys):
    assert main(["check", "--json", str(ROOT / "specs/digits_mlp.dl")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 51210
    assert data["layers"][1]["ops"] == ["dense", "batchnorm", "relu", "dropout"]
    assert data["layers"][1]["output"] == [256]
    # bias dropped before batchnorm: 64*256 weights + 256 gamma + 256 beta
    assert data["layers"][1]["params"] == 64 * 256 + 2 * 256
    assert data["layers"][1]["init"].startswith("he_normal N(0, sqrt(2/64)")


def test_strict_exits_1_on_warnings(capsys):
    path = str(ROOT / "specs/experiments/deep_sigmoid.dl")
    assert main(["check", path]) == 0
    assert main(["check", "--strict", path]) == 1
    assert "DL103" in capsys.readouterr().out


def test_set_override(capsys):
    path = str(ROOT / "specs/digits_mlp.dl")
    assert main(["check", "--json", "--set", "optimizer=sgd", "--set", "optimizer.lr=0.05", path]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["optimizer"]["name"] == "sgd" and data["optimizer"]["lr"] == 0.05
    assert main(["check", "--set", "optimizer.lrr=0.1", path]) == 2
    assert "unknown key 'lrr' for optimizer adam" in capsys.readouterr().err
    assert main(["check", "--set", "nonsense", path]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_every_spec_checks_from_a_fresh_clone_and_the_image_example_trains(tmp_path):
    """What a new user gets (issue 26, item 3): the committed tree alone, as `git clone` gives it -- no
    folder the tests make, no file of this checkout that git does not hold."""
    if not (ROOT / ".git").exists() or subprocess.run(["git", "-C", str(ROOT), "status"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    done = subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "specs"], capture_output=True, text=True)
    if dirty.stdout.strip():
        pytest.skip(f"specs/ has uncommitted changes: a clone would not hold them ({dirty.stdout.split()[1]} ...)")
    specs = sorted(clone.glob("specs/*.dl")) + sorted(clone.glob("specs/experiments/*.dl"))
    assert len(specs) == len(GOOD)
    if SHARED_DATA.is_dir():  # the text examples read ../shared/data beside the clone, as CI lays it out
        (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    else:
        specs = [s for s in specs if not reads_shared_data(s)]
    for spec in specs:
        r = subprocess.run([sys.executable, "-m", "dlc", "check", str(spec)], capture_output=True, text=True, cwd=clone)
        assert r.returncode == 0, (spec.name, r.stderr)
    r = subprocess.run([sys.executable, "-m", "dlc", "train", "specs/digits_images.dl", "-q", "-o", str(tmp_path / "run"),
                        "--set", "train.epochs=1"], capture_output=True, text=True, cwd=clone)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["accuracy"] > 0.5
