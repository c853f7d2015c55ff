"""dlc writes only inside its run folders and deletes only what it wrote: locks, planted links, folder
names from labels, --overwrite beside a user's files."""

import pytest
from helpers import spiral_text

from dlc.cli import main


def test_a_symlinked_lock_is_refused_and_its_target_untouched(spec_file, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    assert main(["train", str(spec_file(spiral_text())), "-q", "-o", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: {run / '.lock'} is a symbolic link; dlc does not follow links in a run folder" in err
    assert victim.read_text() == "precious\n"


def test_files_written_into_a_run_replace_planted_links_instead_of_following_them(spec_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(spec_file(spiral_text())), "-q", "-o", str(run)]) == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run / "history.csv").unlink()
    (run / "history.csv").symlink_to(victim)  # a link where the run writes: the write replaces the link
    assert main(["train", str(run), "--resume", "-q", "--set", "train.epochs=2"]) == 0
    assert victim.read_text() == "precious\n" and not (run / "history.csv").is_symlink()


@pytest.mark.parametrize("label", ["..", ".", "../escape", "a/b", "x" * 300, "\x1b[31mred", ""])
def test_run_folder_names_derived_from_labels_stay_inside_the_parent(tmp_path, label):
    from dlc.runtime.run_folder import MAX_FOLDER_NAME, folder_name
    name = folder_name(label)
    assert name and not name.startswith(".") and "/" not in name and len(name) <= MAX_FOLDER_NAME
    assert all(c.isalnum() or c in "_.+-" for c in name)
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()


def test_compare_of_specs_whose_names_are_dots_writes_only_inside_its_folder(spec_file, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    specs = [spec_file(spiral_text(), "...dl", folder=a), spec_file(spiral_text(), "...dl", folder=b)]
    out = tmp_path / "out" / "inner"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "spec.dl").write_text("mine\n")
    assert main(["compare", *map(str, specs), "-o", str(out), "-q"]) == 0
    assert (tmp_path / "out" / "spec.dl").read_text() == "mine\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["inner", "spec.dl"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["run", "run-2"]


def test_output_in_a_folder_of_the_users_files_is_refused_and_deletes_nothing(spec_file, tmp_path, capsys, monkeypatch):
    mine = {"data.json": "{}", "history.csv": "a,b\n1,2\n", "spec.dl": "# mine\n", "metrics.json": "{}",
            "weights.npz": "not really"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    spec = spec_file(spiral_text(), "train_me.dl")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "train_me.dl", "-q", "-o", "."]) == 2
    err = capsys.readouterr().err
    assert "dlc: error: . is not empty (data.json, history.csv, metrics.json, spec.dl, train_me.dl and 1 more) " \
           "and is not a dlc run folder" in err
    assert "hint: write the run to a new folder with -o, or beside these files with --overwrite" in err
    assert main(["train", "train_me.dl", "-q", "-o", ".", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "dlc: error: . holds data.json, history.csv, metrics.json, spec.dl, weights.npz, which dlc did not " \
           "write; a run would replace them" in err
    assert {n: (tmp_path / n).read_text() for n in mine} == mine and spec.exists()


def test_overwrite_writes_beside_the_users_files_and_keeps_them(spec_file, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine\n")
    assert main(["train", str(spec_file(spiral_text())), "-q", "-o", str(run)]) == 2
    assert "is not empty (notes.txt) and is not a dlc run folder" in capsys.readouterr().err
    assert main(["train", str(spec_file(spiral_text())), "-q", "-o", str(run), "--overwrite"]) == 0
    assert (run / "notes.txt").read_text() == "mine\n" and (run / "weights.npz").exists()


def test_a_new_run_over_an_earlier_run_is_refused_unless_overwrite(spec_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(spec_file(spiral_text())), "-q", "-o", str(run)]) == 0
    before = (run / "weights.npz").read_bytes()
    other = spec_file(spiral_text(model="other"), "other.dl")
    capsys.readouterr()
    assert main(["train", str(other), "-q", "-o", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: {run} holds a run of m; dlc does not overwrite a run" in err
    assert f"hint: continue it with dlc train {run} --resume, write this run to a new folder with -o, or " \
           "replace it with --overwrite" in err
    assert (run / "weights.npz").read_bytes() == before
    assert main(["train", str(other), "-q", "-o", str(run), "--overwrite"]) == 0
    assert "model other" in (run / "spec.dl").read_text()


def test_compare_into_a_folder_that_is_not_empty_is_refused_unless_overwrite(spec_file, tmp_path, capsys):
    specs = [str(spec_file(spiral_text("a"), "a.dl")), str(spec_file(spiral_text("b"), "b.dl"))]
    out = tmp_path / "cmp"
    assert main(["compare", *specs, "-o", str(out), "-q"]) == 0
    assert main(["compare", *specs, "-o", str(out), "-q"]) == 2
    assert f"dlc: error: {out} is not empty; dlc does not overwrite earlier runs" in capsys.readouterr().err
    assert main(["compare", *specs, "-o", str(out), "-q", "--overwrite"]) == 0
