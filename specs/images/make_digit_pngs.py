"""Write scikit-learn's bundled handwritten digits (1,797 scans, 8x8, 17 grey levels) as PNG files in a
folder of class folders: specs/images/digits/0/0000.png ... 9/.... Each is upsampled to 16x16 with
Pillow's bicubic filter and stretched to 0..255, so a spec reads them as real image files would be read.

    python specs/images/make_digit_pngs.py [OUT=specs/images/digits] [SIDE=16]

The folder is in the repository (575 kB), so specs/digits_images.dl checks and trains from a fresh clone;
the tests write it again only where it is missing (tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path


def write_digit_pngs(out: Path, side: int = 16, limit: int | None = None, names: list[str] | None = None) -> Path:
    """The digits as PNG files under out/CLASS/ (CLASS: the digit, or names[digit])."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    out.mkdir(parents=True, exist_ok=True)
    images = np.clip(digits.images * (255 / 16), 0, 255).astype(np.uint8)
    for i, (img, label) in enumerate(zip(images[:limit], digits.target[:limit])):
        folder = out / (names[label] if names else str(label))
        folder.mkdir(exist_ok=True)
        Image.fromarray(img, "L").resize((side, side), Image.BICUBIC).save(folder / f"{i:04d}.png")
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "digits"
    write_digit_pngs(target, int(sys.argv[2]) if len(sys.argv) > 2 else 16)
    print(f"wrote {sum(1 for _ in target.rglob('*.png')):,} PNG files in {target}")
