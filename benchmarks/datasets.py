"""Image datasets the benchmarks train on, written as class folders; nothing downloaded.

    python benchmarks/datasets.py textures /tmp/textures [--images 600]
    python benchmarks/datasets.py --list

- ``shapes``: the starter's own drawn circles, squares and triangles
  (``scripts/make_example_images.py``), PNG and JPEG. They prove the plumbing.
- ``textures``: scikit-image's CC0 photographs of brick, grass and gravel (512 x 512,
  grayscale), each cut into a grid of non-overlapping square crops, one class per
  photograph, PNG. No two crops share a pixel, so a test crop never overlaps a
  training crop; the crop side is the largest that gives the requested count.
- ``faces``: scikit-image's ``lfw_subset``: 100 faces of Labeled Faces in the Wild and
  100 non-face patches of photographs, 25 x 25 grayscale, PNG. Real subjects with an
  up and a down (a vertical flip changes what a face looks like). Always 200 images.
- ``digits``: scikit-learn's ``load_digits``: 1797 handwritten digits, 8 x 8 grayscale
  (16 grey levels scaled to 0-255, not upscaled), one folder per digit ``0`` to ``9``,
  PNG. A flip turns a 6 into a 9. Always 1797 images.

Every builder is deterministic: the same arguments write the same files.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "scripts"))
from make_example_images import make_example_images  # noqa: E402

TEXTURES = ("brick", "grass", "gravel")
TEXTURE_SIDE = 512  # scikit-image's texture photographs are 512 x 512


@dataclass(frozen=True)
class Dataset:
    """What a builder wrote: its folder, classes, image count and image side."""

    name: str
    folder: Path
    classes: tuple[str, ...]
    images: int
    pixels: int


def shapes(folder: Path, images: int = 600, pixels: int = 128) -> Dataset:
    """``images`` drawn shapes (rounded up to a multiple of 3) of ``pixels`` px."""
    per_class = math.ceil(images / 3)
    make_example_images(folder, per_class, pixels)
    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
    return Dataset("shapes", folder, classes, per_class * len(classes), pixels)


def textures(folder: Path, images: int = 600, pixels: int | None = None) -> Dataset:
    """``images`` crops (rounded up to a multiple of 3) of the three texture photos.

    ``pixels`` is ignored: the crop side follows from the count (600 images: 34 px).
    """
    import skimage.data  # noqa: PLC0415  optional: only the real-photo datasets need it

    per_class = math.ceil(images / len(TEXTURES))
    grid = math.ceil(math.sqrt(per_class))  # crops per row and per column
    side = TEXTURE_SIDE // grid
    if side < 8:  # noqa: PLR2004
        raise ValueError(
            f"textures: {images} images would be crops of {side} px; at most "
            f"{3 * (TEXTURE_SIDE // 8) ** 2} images (8 px crops)"
        )
    for name in TEXTURES:
        photo = getattr(skimage.data, name)()
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            row, col = divmod(k, grid)
            crop = photo[row * side : (row + 1) * side, col * side : (col + 1) * side]
            Image.fromarray(crop).save(target / f"{name}_{k:04d}.png")
    return Dataset("textures", folder, TEXTURES, per_class * len(TEXTURES), side)


def faces(
    folder: Path, images: int | None = None, pixels: int | None = None
) -> Dataset:
    """scikit-image's 200 ``lfw_subset`` images: ``face/`` and ``non_face/``, 25 px.

    ``images`` and ``pixels`` are ignored: the set is what scikit-image ships.
    """
    import skimage.data  # noqa: PLC0415

    patches = skimage.data.lfw_subset()  # float in [0, 1]: 100 faces, then 100 others
    half = len(patches) // 2
    for k, patch in enumerate(patches):
        label = "face" if k < half else "non_face"
        target = folder / label
        target.mkdir(parents=True, exist_ok=True)
        pixels_u8 = np.round(patch * 255).astype(np.uint8)
        Image.fromarray(pixels_u8).save(target / f"{label}_{k % half:03d}.png")
    return Dataset(
        "faces", folder, ("face", "non_face"), len(patches), patches.shape[1]
    )


def digits(
    folder: Path, images: int | None = None, pixels: int | None = None
) -> Dataset:
    """scikit-learn's 1797 handwritten digits: ``0/`` to ``9/``, 8 px.

    ``images`` and ``pixels`` are ignored: the set is what scikit-learn ships.
    """
    from sklearn.datasets import load_digits  # noqa: PLC0415

    bunch = load_digits()  # 16 grey levels: 0 (background) to 16
    for k, (image, label) in enumerate(zip(bunch.images, bunch.target, strict=True)):
        target = folder / str(label)
        target.mkdir(parents=True, exist_ok=True)
        pixels_u8 = np.round(image * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels_u8).save(target / f"{k:04d}.png")
    classes = tuple(str(label) for label in bunch.target_names)
    return Dataset("digits", folder, classes, len(bunch.images), bunch.images.shape[1])


BUILDERS: dict[str, Callable[..., Dataset]] = {
    "shapes": shapes,
    "textures": textures,
    "faces": faces,
    "digits": digits,
}
REAL_PHOTOS = ("textures", "faces")


def build(name: str, folder: Path, images: int = 600, pixels: int = 128) -> Dataset:
    """Write dataset ``name`` as ``folder/<class>/<file>``; ``folder`` must not exist."""
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}: one of {', '.join(BUILDERS)}")
    if folder.exists():
        raise FileExistsError(f"dataset folder {folder} already exists")
    return BUILDERS[name](folder, images=images, pixels=pixels)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", choices=sorted(BUILDERS))
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--pixels", type=int, default=128, help="shapes only")
    parser.add_argument("--list", action="store_true", help="list the datasets")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for name, builder in BUILDERS.items():
            print(f"{name}: {(builder.__doc__ or '').splitlines()[0]}")  # noqa: T201
        return
    if args.folder is None:
        parser.error("give the folder to write the dataset into")
    dataset = build(args.name, args.folder, args.images, args.pixels)
    print(  # noqa: T201
        f"{dataset.name}: {dataset.images} images of {dataset.pixels} px in "
        f"{len(dataset.classes)} classes ({', '.join(dataset.classes)}) in {dataset.folder}"
    )


if __name__ == "__main__":
    main()
