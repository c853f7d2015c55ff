import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parent.parent  # the checkout: specs/ lives here


def _digit_pngs():
    """specs/images/digits/: the PNG folder that specs/digits_images.dl reads (in the repository; written again
    only when it is missing)."""
    folder = ROOT / "specs" / "images" / "digits"
    if not (folder / "9").is_dir() or sum(1 for _ in folder.rglob("*.png")) < 1797:
        sys.path.insert(0, str(ROOT / "specs" / "images"))
        from make_digit_pngs import write_digit_pngs
        write_digit_pngs(folder)
    return folder


_digit_pngs()


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
