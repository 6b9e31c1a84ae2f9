"""Thesis Fig. 2.1b,c at CPU scale: the CAP-RBM on MNIST in the complex wavelet domain.

    .venv/bin/python benchmarks/caprbm_mnist.py [--train 8000 --cd-epochs 10 --pcd-epochs 40] [--out DIR]
    .venv/bin/python benchmarks/caprbm_mnist.py --quick

Appendix A.3's recipe on the 10k MNIST split in ../shared/data/mnist (the thesis used the 60k
training set): the two middle dual-tree CWT bands (390 units, thresholded at 0.15 of each band's
maximum), 400 hidden units, CD-1 epochs as initialisation, then PCD epochs with 500 persistent chains,
the last ones with weight decay (the thesis: 10 CD-1, then 100 PCD without and 100 with weight decay;
fewer here). Then:

* `reconstructions.png` (Fig. 2.1b): held-out digits, the digit the thresholded units decode to, and
  the visible rates decoded after 1, 10, 100 and 1000 Gibbs steps from the data;
* `free_samples.png` (Fig. 2.1c): rates after 1000 (and 10,000) steps from random units, decoded with
  the global phase chosen automatically (the thesis set it by hand);
* `reconstruction_error.png` and `.csv`: error against Gibbs steps from the data, in the unit domain
  (mean |v0 - E[v|h]|^2 per unit) and in the image domain (1 - correlation with the digit the data
  units decode to), for the CD-1 model and the CD-1 + PCD model.
"""
import argparse
import csv
import sys
import time
from pathlib import Path

import torch

from entropy_mcmc.ebm_training import CAPRBM
from entropy_mcmc.ebm_training.rbm.stability import gibbs_snapshots, plot_stability_grid
from entropy_mcmc.ebm_training.rbm.training import RBMTrainConfig, Trainer
from entropy_mcmc.ebm_training.rbm.wavelet import WaveletCodec, load_mnist


def correlation(a, b):
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def errors(model, codec, v0, steps, seed):
    rates, _ = gibbs_snapshots(model, v0, steps, seed=seed)
    ref = codec.decode(v0)
    out = []
    for s, r in zip(steps, rates):
        out.append({"steps": s, "unit_error": float((r - v0).abs().pow(2).mean()),
                    "image_error": float(1 - correlation(codec.decode(r, align=True), ref).mean())})
    return out, rates


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist-dir", default=None)
    p.add_argument("--train", type=int, default=8000)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--cd-epochs", type=int, default=10)
    p.add_argument("--pcd-epochs", type=int, default=40)
    p.add_argument("--weight-decay-epochs", type=int, default=15, help="last PCD epochs with weight decay")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--pcd-lr", type=float, default=0.005)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--pcd-chains", type=int, default=500, help="persistent chains")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="results/caprbm_mnist")
    a = p.parse_args(argv)
    if a.quick:
        a.train, a.test, a.hidden, a.cd_epochs, a.pcd_epochs, a.weight_decay_epochs = 400, 16, 32, 1, 1, 1
        a.pcd_chains = 50
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    images, _ = load_mnist(a.mnist_dir)
    train_img, test_img = images[:a.train], images[a.train:a.train + a.test]
    codec = WaveletCodec.fit(train_img)
    data, test = codec.encode(train_img), codec.encode(test_img)
    print(f"{data.shape[0]} training digits as {data.shape[1]} units, {float(data.abs().mean()):.2f} active",
          flush=True)
    steps = (1, 10, 100, 1000) if not a.quick else (1, 10)
    model = CAPRBM(data.shape[1], a.hidden, seed=a.seed)
    meta = {"data": "mnist-cwt", "num_data": a.train, "image_shape": None, "codec": codec.state_dict()}
    log = out / "train.csv"
    log.unlink(missing_ok=True)
    t0 = time.perf_counter()
    cd = Trainer(model, RBMTrainConfig(epochs=a.cd_epochs, batch_size=a.batch_size, learning_rate=a.lr, momentum=0.5,
                                    seed=a.seed, progress=False), meta)
    cd.fit(data, checkpoint=out / "mnist_cd1.pt", log=log)
    cd_s = time.perf_counter() - t0
    table = [{"model": f"CD-1 {a.cd_epochs} epochs", **r} for r in errors(model, codec, test, steps, a.seed)[0]]
    t0 = time.perf_counter()
    decay_from = a.cd_epochs + a.pcd_epochs - a.weight_decay_epochs
    pcd = Trainer.load(out / "mnist_cd1.pt", persistent=True, learning_rate=a.pcd_lr, momentum=0.5,
                       epochs=decay_from, num_chains=a.pcd_chains)
    pcd.fit(data, checkpoint=out / "mnist_pcd.pt", log=log)
    pcd.save(out / "mnist_pcd.pt")
    pcd = Trainer.load(out / "mnist_pcd.pt", weight_decay=a.weight_decay, epochs=a.cd_epochs + a.pcd_epochs)
    pcd.fit(data, checkpoint=out / "mnist_pcd.pt", log=log)
    pcd_s = time.perf_counter() - t0
    model = pcd.model
    rows, rates = errors(model, codec, test, steps, a.seed)
    table += [{"model": f"CD-1 then PCD {a.pcd_epochs} epochs", **r} for r in rows]
    with open(out / "reconstruction_error.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    # Fig. 2.1b: data, what the thresholded units decode to, decoded rates after k steps
    keep = 10
    shown = torch.stack([codec.decode(r[:keep], align=True).flatten(1) for r in rates])
    plot_stability_grid([("MNIST digits; row 2: thresholded CWT units decoded; then rates after k Gibbs steps",
                          test_img[:keep].flatten(1), torch.cat([codec.decode(test[:keep]).flatten(1)[None], shown]),
                          ("units",) + steps)], out / "reconstructions.png", image_shape=(28, 28))
    # Fig. 2.1c: free samples from random units
    free_steps = (1000, 10000) if not a.quick else (10,)
    noise = model.random_visible(keep, torch.Generator().manual_seed(a.seed + 5), p_active=float(data.abs().mean()))
    t0 = time.perf_counter()
    free, _ = gibbs_snapshots(model, noise, free_steps, seed=a.seed + 6)
    free_s = time.perf_counter() - t0
    plot_stability_grid([("free samples from random units (global phase set automatically)",
                          codec.decode(noise, align=True).flatten(1),
                          torch.stack([codec.decode(r, align=True).flatten(1) for r in free]), free_steps)],
                        out / "free_samples.png", image_shape=(28, 28), first_label="random start")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for name in dict.fromkeys(r["model"] for r in table):
        rs = [r for r in table if r["model"] == name]
        for ax, key in zip(axes, ("unit_error", "image_error")):
            ax.plot([r["steps"] for r in rs], [r[key] for r in rs], "o-", label=name)
    for ax, label in zip(axes, ("mean |v0 - E[v|h]|^2 per unit", "1 - correlation of decoded digits")):
        ax.set_xscale("log")
        ax.set_xlabel("Gibbs steps from held-out data")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "reconstruction_error.png", dpi=110)
    lines = ["| model | Gibbs steps | unit error | image error (1 - corr) |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['model']} | {r['steps']} | {r['unit_error']:.3f} | {r['image_error']:.3f} |" for r in table]
    (out / "reconstruction_error.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"CD-1 {cd_s:.0f} s, PCD {pcd_s:.0f} s, free sampling {free_s:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
