"""Double spiral with the released notebook's recipe (thesis Figure 5.1), and what stops it at CPU budgets.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nmce_spiral_release.py --steps 1000          # NMCE only
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nmce_spiral_release.py --steps 2800 --tcr 2000
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nmce_spiral_release.py --steps 1200 --supervised 400

The released notebook's settings: MLP 2-128x5 (ELU) with linear heads (z 6, 2 logits), one Adam (1e-3, betas
0.9/0.99, wd 1e-5) on everything, Gumbel-softmax at tau 0.2, eps^2 0.01, lambda 4000, fresh spiral points every
step (data noise 0.1, augmentation noise 0.2). The thesis runs 30,000 steps at batch 4096; here batch 512.

Diagnostics every `--every` steps on 2048 held-out points: the cluster head's ACC, a logistic-regression probe of
the backbone output h and of z (can a linear map tell the arms apart?), and k-means on z. `--tcr N` trains
the first N steps with TCR (eq. 5.5) only. `--supervised N` adds a cross-entropy term on the true arms for the
first N steps: it puts the network at the arm partition, to test whether NMCE keeps it (is it a better optimum
of eq. 5.4?). `--plot` saves the partition of the held-out points.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--tcr", type=int, default=0, help="TCR-only steps first")
    p.add_argument("--supervised", type=int, default=0, help="steps with a cross-entropy term on the true arms")
    p.add_argument("--tau", type=float, default=0.2)
    p.add_argument("--lam", type=float, default=4000.0)
    p.add_argument("--noise", type=float, default=0.2, help="augmentation noise")
    p.add_argument("--data-noise", type=float, default=0.1)
    p.add_argument("--z-dim", type=int, default=6)
    p.add_argument("--eps-sq", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=200)
    p.add_argument("--plot", default=None, help="PNG of the held-out partition")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression

    from entropy_mcmc.clustering import ClusterNetwork, MLPBackbone, double_spiral
    from entropy_mcmc.clustering.coding_rate import nmce_loss, tcr_loss
    from entropy_mcmc.clustering.gumbel import gumbel_softmax
    from entropy_mcmc.clustering.metrics import clustering_scores

    def probe(features, y):
        f = features.numpy()
        return LogisticRegression(max_iter=2000).fit(f, y.numpy()).score(f, y.numpy())

    torch.manual_seed(a.seed)
    net = ClusterNetwork(MLPBackbone(2, 128, 5), a.z_dim, 2)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr, betas=(0.9, 0.99), weight_decay=1e-5)
    test = double_spiral(2048, noise=a.data_noise, seed=1000 + a.seed)
    t0 = time.perf_counter()
    for i in range(a.steps):
        batch = double_spiral(a.batch_size, noise=a.data_noise, seed=a.seed * 100000 + i)
        views = torch.stack([batch.x + a.noise * torch.randn_like(batch.x) for _ in range(2)])
        z, logits = net(views.flatten(0, 1))
        z, logits = z.view(2, a.batch_size, -1), logits.view(2, a.batch_size, -1)
        if i < a.tcr:
            parts = tcr_loss(z, a.eps_sq, a.lam)
        else:
            parts = nmce_loss(z, gumbel_softmax(logits, a.tau), a.eps_sq, a.lam, 1.0)
        loss = parts.loss
        if i < a.supervised:
            loss = loss + 100 * F.cross_entropy(logits.mean(0), batch.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % a.every == 0 or i == a.steps - 1:
            with torch.no_grad():
                h = net.features(test.x)
                zt, lt = net(test.x)
            km = KMeans(2, n_init=4, random_state=0).fit_predict(zt.numpy())
            print(f"step {i} loss {float(parts.loss.detach()):.3f} rate {parts.rate:.3f} "
                  f"cluster_rate {parts.cluster_rate:.3f} sim {parts.similarity:.4f} "
                  f"acc {clustering_scores(test.y, lt.argmax(1))['acc']:.3f} "
                  f"probe_h {probe(h, test.y):.3f} probe_z {probe(zt, test.y):.3f} "
                  f"kmeans_z {clustering_scores(test.y, torch.from_numpy(km))['acc']:.3f} "
                  f"seconds {time.perf_counter() - t0:.0f}", flush=True)
    if a.plot:
        from entropy_mcmc.clustering.figures import plot_points

        plot_points(test.x, lt.argmax(1), a.plot, "NMCE, released recipe")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
