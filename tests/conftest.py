"""What every test may ask for: ROOT (the checkout), fixtures that write specs and train small runs once,
the digit PNGs specs/digits_images.dl reads; and a line per finished test file (below)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/: helpers.py, opcheck.py for the tests in every folder

ROOT = Path(__file__).resolve().parent.parent  # the checkout: specs/ lives here


SHARED_DATA = ROOT.parent / "shared" / "data"  # the real data CI copies beside the clone (rotten_tomatoes.csv)


def reads_shared_data(path: Path) -> bool:
    """A spec of specs/ whose data line reads ../shared/data (the text examples)."""
    return path.suffix == ".dl" and "shared/data/" in path.read_text()


def _skip_without_shared_data(items) -> None:
    """Tests of a spec that reads ../shared/data skip, with the reason, on a clone without it."""
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is not here (CI copies ../shared beside the clone)")
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(isinstance(v, Path) and reads_shared_data(v) for v in params.values()):
            item.add_marker(skip)


@pytest.fixture
def spec_file(tmp_path):
    """spec_file(text, name="s.dl", folder=tmp_path) -> the path of a spec file holding `text`."""
    def write(text: str, name: str = "s.dl", folder: Path | None = None) -> Path:
        path = (folder or tmp_path) / name
        path.write_text(text)
        return path
    return write


@pytest.fixture(scope="session")
def spiral_run(tmp_path_factory):
    """A run folder of specs/spiral.dl trained for one epoch (shared: a test that changes it copies it first)."""
    from dlc.cli import main
    out = tmp_path_factory.mktemp("spiral") / "run"
    assert main(["train", str(ROOT / "specs/spiral.dl"), "-q", "-o", str(out), "--set", "train.epochs=1"]) == 0
    return out


@pytest.fixture(scope="session")
def digit_pngs():
    """specs/images/digits/: the PNG folder that specs/digits_images.dl reads (committed; written again only
    when it is missing)."""
    folder = ROOT / "specs" / "images" / "digits"
    if not (folder / "9").is_dir() or sum(1 for _ in folder.rglob("*.png")) < 1797:
        sys.path.insert(0, str(ROOT / "specs" / "images"))
        from make_digit_pngs import write_digit_pngs
        write_digit_pngs(folder)
    return folder


# ---- progress per file: a line as each test file finishes (also under pytest-xdist, where the dots of
# ---- several workers say nothing of where the run is) ------------------------------------------------
_FILES: dict[str, dict] = {}


def _count(nodeids) -> None:
    if _FILES:
        return  # (every xdist worker collects the same tests: count them once)
    for nodeid in nodeids:
        entry = _FILES.setdefault(nodeid.split("::", 1)[0], {"total": 0, "done": 0, "failed": 0, "start": None})
        entry["total"] += 1


def pytest_collection_modifyitems(session, config, items):
    _skip_without_shared_data(items)
    if not hasattr(config, "workerinput"):  # a serial run; xdist's controller counts below
        _count(item.nodeid for item in items)


def pytest_xdist_node_collection_finished(node, ids):
    _count(ids)


_CONFIG = []


def pytest_configure(config):
    if not hasattr(config, "workerinput") and config.get_verbosity() < 1:  # (verbose runs show each test)
        _CONFIG.append(config)


def pytest_runtest_logreport(report):
    import time
    entry = _FILES.get(report.nodeid.split("::", 1)[0])
    if entry is None or not _CONFIG:
        return
    if entry["start"] is None:
        entry["start"] = time.perf_counter()
    entry["failed"] += bool(report.failed)
    if report.when == "teardown":
        entry["done"] += 1
        reporter = _CONFIG[0].pluginmanager.get_plugin("terminalreporter")
        if entry["done"] == entry["total"] and reporter is not None:
            failed = f", {entry['failed']} FAILED" if entry["failed"] else ""
            if reporter._tw.width_of_current_line:  # (quiet runs write dots without a line end)
                reporter._tw.line()
            reporter.write_line(f"{report.nodeid.split('::', 1)[0]}: {entry['total']} test(s){failed}, "
                                f"{time.perf_counter() - entry['start']:.1f} s")
