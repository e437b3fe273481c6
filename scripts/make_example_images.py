"""Make the starter's embedded example images: three classes of drawn shapes.

The images under ``{{ cookiecutter.repo_name }}/data/01_raw/images/`` are the output of
this script, committed so that a generated project trains offline. Rerun it after
changing it; ``tests/test_example_images.py`` checks the shipped files match its output.

    python scripts/make_example_images.py
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("circle", "square", "triangle")
IMAGES_PER_CLASS = 150
SIZE = 80
SEED = 20261126
DEFAULT_OUTPUT = (
    Path(__file__).resolve().parents[1]
    / "{{ cookiecutter.repo_name }}"
    / "data"
    / "01_raw"
    / "images"
)


def _random_colour(rng: random.Random, low: int, high: int) -> tuple[int, int, int]:
    return tuple(rng.randrange(low, high) for _ in range(3))  # type: ignore[return-value]


def _polygon(
    centre: tuple[float, float], radius: float, sides: int, angle: float
) -> list[tuple[float, float]]:
    cx, cy = centre
    return [
        (
            cx + radius * math.cos(angle + 2 * math.pi * k / sides),
            cy + radius * math.sin(angle + 2 * math.pi * k / sides),
        )
        for k in range(sides)
    ]


def draw_shape(shape: str, rng: random.Random, size: int = SIZE) -> Image.Image:
    """Draw one shape of random size, place, rotation and colours on a noisy background,
    on a square image of ``size`` pixels."""
    background = _random_colour(rng, 150, 256)  # light backgrounds, dark shapes
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randrange(3, 8)):  # distracting specks
        x, y = rng.uniform(0, size), rng.uniform(0, size)
        draw.point((x, y), fill=_random_colour(rng, 0, 256))
    fill = _random_colour(rng, 0, 110)
    radius = rng.uniform(size * 0.18, size * 0.36)
    centre = (rng.uniform(radius, size - radius), rng.uniform(radius, size - radius))
    angle = rng.uniform(0, 2 * math.pi)
    if shape == "circle":
        cx, cy = centre
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
    elif shape == "square":
        draw.polygon(_polygon(centre, radius, 4, angle), fill=fill)
    else:
        draw.polygon(_polygon(centre, radius, 3, angle), fill=fill)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.8)))


def make_example_images(
    output: Path, images_per_class: int = IMAGES_PER_CLASS, size: int = SIZE
) -> list[Path]:
    """Write the example images, alternating PNG and JPEG within every class.

    ``size`` is the side of the square images in pixels (the benchmarks draw larger ones).
    """
    rng = random.Random(SEED)
    written = []
    for shape in CLASSES:
        folder = output / shape
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(images_per_class):
            image = draw_shape(shape, rng, size)
            if index % 2:
                path = folder / f"{shape}_{index:03d}.jpg"
                image.save(path, format="JPEG", quality=90)
            else:
                path = folder / f"{shape}_{index:03d}.png"
                image.save(path, format="PNG", optimize=True)
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--images-per-class", type=int, default=IMAGES_PER_CLASS)
    parser.add_argument("--size", type=int, default=SIZE, help="side in pixels")
    args = parser.parse_args()
    paths = make_example_images(args.output, args.images_per_class, args.size)
    print(f"wrote {len(paths)} images under {args.output}")  # noqa: T201


if __name__ == "__main__":
    main()
