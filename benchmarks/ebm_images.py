"""MDSM on images at CPU scale (8x8 digits, MNIST-10k): sample and inpainting grids, the annealing energy trace,
denoising PSNR at several noise levels, class coverage and a Frechet distance in the hidden layer of a small
classifier trained on the same training split (scikit-learn MLPClassifier, 128 ReLU units, Adam, 300 epochs at
most; nothing downloaded), and nearest training neighbours of samples (Figure B.2 analogue).

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ebm_images.py --data digits --steps 3000 --out results/ebm_digits
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ebm_images.py --data mnist --root ../shared/data/mnist \
        --steps 1500 --num-samples 100 --out results/ebm_mnist
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

from entropy_mcmc.ebm_training.data import load_data
from entropy_mcmc.ebm_training.denoising import denoise_jump
from entropy_mcmc.ebm_training.metrics import (classifier_features as features, fit_feature_classifier,
                                               frechet_distance, nearest_neighbours, psnr)
from entropy_mcmc.ebm_training.networks import build_network
from entropy_mcmc.ebm_training.plots import energy_trace, image_grid
from entropy_mcmc.ebm_training.presets import training_preset
from entropy_mcmc.ebm_training.sampling import sample_ebm
from entropy_mcmc.ebm_training.trainer import EBMTrainConfig, EBMTrainer
from entropy_mcmc.ebm_training.inpainting import image_mask


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--root", default=None)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--held-out", type=int, default=297)
    p.add_argument("--num-samples", type=int, default=500)
    p.add_argument("--anneal-steps", type=int, default=2700)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/ebm_digits")
    args = p.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    x, info = load_data(args.data, root=args.root)
    labels = info["labels"]
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(args.seed))
    test_idx, train_idx = perm[:args.held_out], perm[args.held_out:]
    train, test = x[train_idx], x[test_idx]
    net, cfg = training_preset(x.shape[1:], "cpu")
    cfg["steps"] = args.steps
    torch.manual_seed(args.seed)
    trainer = EBMTrainer(build_network(net), train, EBMTrainConfig(loss="mdsm", log_every=100, **cfg), seed=args.seed)
    trainer.train(progress=False, log_path=os.path.join(args.out, "log.csv"),
                  checkpoint_path=os.path.join(args.out, "model.pt"))
    model = trainer.model.eval()
    res = {"data": args.data, "train": len(train), "held_out": len(test), "network": net, "config": cfg,
           "train_s": trainer.seconds, "ms_per_update": 1000 * trainer.seconds / args.steps}
    print(json.dumps(res), flush=True)

    out = sample_ebm(model, args.num_samples, seed=args.seed, anneal_steps=args.anneal_steps, init_mean=0.5,
                     progress=False)
    samples = out.samples.clamp(0, 1)
    res["sample_s"] = out.seconds
    image_grid(samples[:128], os.path.join(args.out, "samples.png"), ncol=16, title=f"{args.data}: MDSM samples")
    energy_trace(out.temperature, out.mean_energy, os.path.join(args.out, "energy_trace.png"),
                 title="annealed Langevin: temperature and mean energy")

    clf = fit_feature_classifier(train, labels[train_idx.numpy()], args.seed)
    res["classifier_test_accuracy"] = float(clf.score(test.flatten(1).numpy(), labels[test_idx.numpy()]))
    pred = clf.predict(samples.flatten(1).double().numpy())
    hist = np.bincount(pred, minlength=10) / len(pred)
    res["class_shares"] = [round(float(h), 3) for h in hist]
    res["classes_above_2pct"] = int((hist >= 0.02).sum())
    f_test = features(clf, test)
    res["frechet_samples_vs_test"] = frechet_distance(features(clf, samples), f_test)
    res["frechet_train_vs_test"] = frechet_distance(features(clf, train[:len(samples)]), f_test)
    noise = torch.rand_like(samples)
    res["frechet_uniform_noise_vs_test"] = frechet_distance(features(clf, noise), f_test)

    # denoising PSNR: x + sigma z against the jump (eq. 3.9)
    gen = torch.Generator().manual_seed(args.seed + 5)
    res["psnr"] = {}
    for sigma in (0.1, 0.2, 0.3, 0.5):
        noisy = test + sigma * torch.randn(test.shape, generator=gen)
        clean = denoise_jump(model, noisy, 0.1)
        res["psnr"][str(sigma)] = {"noisy": psnr(test, noisy), "denoised": psnr(test, clean.clamp(0, 1))}

    # nearest neighbours in the training set (memorization check)
    d, idx = nearest_neighbours(samples[:10], train, k=5)
    rows = torch.cat([torch.cat([samples[i:i + 1], train[idx[i]]]) for i in range(10)])
    image_grid(rows, os.path.join(args.out, "nearest_neighbours.png"), ncol=6,
               title="sample | 5 nearest training images (L2)")
    d_s = nearest_neighbours(samples, train, k=1)[0].flatten()
    d_t = nearest_neighbours(test, train, k=1)[0].flatten()
    res["median_nn_distance"] = {"samples": float(d_s.median()), "held_out_data": float(d_t.median())}

    # inpainting: the top half known
    k = 16
    mask = image_mask("bottom-half", tuple(x.shape[1:]))
    inp = sample_ebm(model, k, seed=args.seed + 1, anneal_steps=args.anneal_steps, init_mean=0.5, mask=mask,
                     reference=test[:k], progress=False)
    masked = torch.where(mask, test[:k], torch.zeros_like(test[:k]))
    image_grid(torch.cat([masked, inp.samples.clamp(0, 1), test[:k]]), os.path.join(args.out, "inpainting.png"),
               ncol=k, row_labels=["known", "inpainted", "truth"])
    res["inpainting_psnr_unknown_half"] = psnr(test[:k][:, ~mask], inp.samples.clamp(0, 1)[:, ~mask])
    print(json.dumps(res, indent=1))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
