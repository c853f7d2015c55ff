"""The picture of the network (dlc check --graph): DOT and Mermaid against golden files (regenerate
with UPDATE_GOLDEN=1 after an intended change, and look at the diff), the SVG well-formed and naming
every line, the run folder's network.svg, and the refusals."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import dlc
from dlc.cli import main
from dlc.compiler.picture import picture, render
from conftest import ROOT

SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = [("resnet_digits", ".dot", None), ("resnet_digits", ".mmd", 1), ("inception_digits", ".mmd", None),
         ("inception_digits", ".dot", 0)]


@pytest.mark.parametrize("name, suffix, depth", CASES, ids=[f"{n}{s}-{d}" for n, s, d in CASES])
def test_dot_and_mermaid_match_their_golden_files(name, suffix, depth):
    spec = dlc.compile((SPECS / f"{name}.dl").read_text())
    golden = GOLDEN / f"{name}{'' if depth is None else f'.depth{depth}'}{suffix}"
    text = render(spec.graph, suffix, depth)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("name", ["resnet_digits", "inception_digits", "all_ops", "digits_mlp"])
def test_the_svg_is_well_formed_and_names_every_line(name):
    spec = dlc.compile((SPECS / f"{name}.dl").read_text())
    svg = render(spec.graph, ".svg")
    root = ET.fromstring(svg)
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    for layer in spec.graph.layers:  # every line: a box, or a cluster's label
        assert layer.text in texts, layer.text
    boxes = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "line"]
    assert len(boxes) == len(picture(spec.graph).boxes)


def test_a_residual_shortcut_and_parallel_branches_are_edges():
    p = picture(dlc.compile((SPECS / "resnet_digits.dl").read_text()).graph)
    assert ("L1", "L3") in p.edges and ("L5", "L3") in p.edges  # the identity path and the body join at the add
    q = picture(dlc.compile((SPECS / "inception_digits.dl").read_text()).graph)
    assert {("L1", "L5"), ("L1", "L7"), ("L1", "L9"), ("L5", "L3"), ("L7", "L3"), ("L9", "L3")} <= set(q.edges)


def test_depth_0_draws_each_block_use_as_one_box_with_its_parameters():
    spec = dlc.compile((SPECS / "resnet_digits.dl").read_text())
    p = picture(spec.graph, depth=0)
    assert [b.text for b in p.boxes.values()][2:6] == ["basic 16", "basic 16", "basic 32 stride=2 shortcut=project",
                                                        "basic 32"]
    assert sum(b.params for b in p.boxes.values()) == spec.graph.param_count


def test_check_writes_the_picture_and_train_keeps_one_in_the_run(tmp_path, capsys):
    assert main(["check", str(SPECS / "digits_fast.dl"), "--graph", str(tmp_path / "n.mmd")]) == 0
    assert (tmp_path / "n.mmd").read_text().startswith("flowchart TD")
    assert main(["train", str(SPECS / "digits_fast.dl"), "-o", str(tmp_path / "run"), "-q",
                 "--set", "train.epochs=1"]) == 0
    ET.parse(tmp_path / "run" / "network.svg")


@pytest.mark.parametrize("args, message", [
    (["--graph", "net.png"], "--graph net.png: a picture is written as .svg, .dot (Graphviz) or .mmd (Mermaid)"),
    (["--graph", "n.svg", "--graph-depth", "-1"], "--graph-depth -1: a depth is 0"),
])
def test_a_picture_that_cannot_be_written_is_refused(tmp_path, capsys, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(SPECS / "digits_fast.dl"), *args]) == 2
    assert message in capsys.readouterr().err


def _rects(svg: str) -> dict[str, tuple[float, float, float]]:
    """Each line box's id -> (x, y, width) as drawn."""
    ns = "{http://www.w3.org/2000/svg}"
    out = {}
    for g in ET.fromstring(svg).iter(f"{ns}g"):
        if g.get("class") == "line":
            r = g.find(f"{ns}rect")
            out[g.get("id")] = (float(r.get("x")), float(r.get("y")), float(r.get("width")))
    return out


def test_the_svg_draws_parallel_branches_side_by_side():
    spec = dlc.compile((SPECS / "inception_digits.dl").read_text())
    rects = _rects(render(spec.graph, ".svg"))
    branches = [rects[b] for b in ("L5", "L7", "L9")]  # the first module's three branch convs
    assert len({y for _, y, _ in branches}) == 1  # on one row
    assert all(x1 + w1 < x2 for (x1, _, w1), (x2, _, _) in zip(branches, branches[1:]))  # left to right, apart
    assert rects["L3"][1] > branches[0][1]  # the concat below them


def test_the_svg_draws_a_projection_shortcut_beside_the_body():
    spec = dlc.compile((SPECS / "resnet_digits.dl").read_text())
    p = picture(spec.graph)
    assert p.boxes["L11s"].text == "shortcut: conv, batchnorm" and p.boxes["L11s"].params == 576
    assert ("L7", "L11s") in p.edges and ("L11s", "L11") in p.edges
    rects = _rects(render(spec.graph, ".svg"))
    (bx, by, bw), (sx, sy, _) = rects["L12"], rects["L11s"]
    assert sy == by and sx > bx + bw  # level with the body's first conv, to its right
    assert sum(b.params for b in p.boxes.values()) == spec.graph.param_count
