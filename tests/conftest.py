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
