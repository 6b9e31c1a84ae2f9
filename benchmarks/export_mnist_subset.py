"""Write a class-balanced subset of the MNIST test split in the two layouts a user brings to `entropy-mcmc cluster`.

    .venv/bin/python benchmarks/export_mnist_subset.py --mnist ../shared/data/mnist --per-class 300 --out /tmp/mnist3k

Writes `OUT/png/<digit>/<index>.png` (one folder of PNG images per class) and `OUT/mnist.mat` (`fea`: one image
per row flattened column-major as MATLAB stores it, `gnd`: labels 1-10, the layout COIL-20/100 are shared in).
The first `--per-class` images of each digit in file order are taken, so the subset is the same on every machine.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", default="../shared/data/mnist", help="folder with the t10k IDX files")
    p.add_argument("--per-class", type=int, default=300)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.per_class < 1:
        raise SystemExit("--per-class must be positive")
    from PIL import Image
    from scipy.io import savemat

    from entropy_mcmc.ebm_training.data import mnist_data

    x, y = mnist_data(a.mnist, "t10k")
    keep = np.concatenate([np.flatnonzero(y == d)[:a.per_class] for d in range(10)])
    images = np.rint(x[keep, 0] * 255).astype(np.uint8)
    labels = y[keep]
    out = Path(a.out)
    for i, (img, d) in enumerate(zip(images, labels)):
        folder = out / "png" / str(int(d))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:05d}.png")
    fea = images.transpose(0, 2, 1).reshape(len(images), -1).astype(np.float64)   # column-major rows
    savemat(out / "mnist.mat", {"fea": fea, "gnd": (labels + 1).reshape(-1, 1).astype(np.float64)})
    print(f"{len(images)} images: {out / 'png'} and {out / 'mnist.mat'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
