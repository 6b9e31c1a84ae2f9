"""`entropy-mcmc train-rbm`: train a CAP-RBM (thesis ch. 2) or a Bernoulli RBM with CD-k or PCD.

    entropy-mcmc train-rbm --model caprbm --data bars --epochs 10 --out bars.pt [--no-coupling]
    entropy-mcmc train-rbm --model bernoulli --data digits --out digits.pt
    entropy-mcmc train-rbm --model caprbm --data mnist-cwt --hidden 400 --epochs 10 --out cwt.pt
    entropy-mcmc train-rbm --resume cwt.pt --pcd --epochs 20 --out cwt.pt     # CD-1, then PCD (appendix A.3)
"""
from __future__ import annotations

import argparse

from . import common
from .common import UsageError

HELP = "train a CAP-RBM (thesis ch. 2) or a Bernoulli RBM with CD-k/PCD; write a checkpoint for sample-rbm"
# rows used for training by default; the rest of a finite set is held out for `sample-rbm`
DEFAULT_ROWS = {"bars": 40000, "digits": 1500, "mnist-cwt": 8000}
DEFAULT_HIDDEN = {"bars": 200, "digits": 100, "mnist-cwt": 400}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=("caprbm", "bernoulli"), default="caprbm")
    p.add_argument("--data", default=None, help="bars | digits | mnist-cwt | PATH.npy (default: bars for caprbm, "
                   "digits for bernoulli)")
    p.add_argument("--num-data", type=common.positive_int, default=None, metavar="N",
                   help="training rows (default: 40000 bars, 1500 digits, 8000 MNIST)")
    p.add_argument("--mnist-dir", default=None, help="directory of the MNIST IDX files (mnist-cwt)")
    p.add_argument("--hidden", type=common.positive_int, default=None,
                   help="hidden units (default: 200 bars, 100 digits, 400 MNIST)")
    p.add_argument("--no-coupling", action="store_true", help="CAP-RBM without the amplitude coupling J")
    p.add_argument("--epochs", type=common.positive_int, default=10)
    p.add_argument("--batch-size", type=common.positive_int, default=None, help="default 100 (digits: 10)")
    p.add_argument("--lr", type=common.positive_float, default=None, help="learning rate (default 0.05; digits: 0.06)")
    p.add_argument("--momentum", type=common.unit_interval, default=0.5)
    p.add_argument("--weight-decay", type=common.nonneg_float, default=0.0)
    p.add_argument("--cd-k", type=common.positive_int, default=1, help="Gibbs steps per update (default 1)")
    p.add_argument("--pcd", action="store_true", help="persistent chains (PCD) instead of restarting at the data")
    p.add_argument("--chains", type=common.positive_int, default=None, help="PCD chains (default: the batch size)")
    p.add_argument("--sparsity-target", type=common.probability, default=None)
    p.add_argument("--sparsity-cost", type=common.nonneg_float, default=0.0)
    p.add_argument("--resume", default=None, metavar="PATH", help="continue training this checkpoint")
    p.add_argument("--seed", type=common.seed, default=0)
    p.add_argument("--threads", type=common.nonneg_int, default=1, help="torch threads; 0: torch's default")
    p.add_argument("--log", default=None, metavar="CSV", help="append one row of monitors per epoch")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, metavar="PATH", help="checkpoint to write (.pt)")


def _given(value, default):
    return default if value is None else value


def run(args) -> int:
    import torch

    from ..ebm_training import CAPRBM, RBM
    from ..ebm_training.rbm.checkpoint import read_payload
    from ..ebm_training.rbm.data import load_rbm_data
    from ..ebm_training.rbm.training import RBMTrainConfig, Trainer

    common.check_writable_file(args.out)
    common.check_writable_file(args.log, "--log")
    if args.threads:
        torch.set_num_threads(args.threads)
    small = args.data == "digits" or (args.data is None and args.model == "bernoulli")
    settings = dict(epochs=args.epochs, batch_size=_given(args.batch_size, 10 if small else 100),
                    learning_rate=_given(args.lr, 0.06 if small else 0.05), momentum=args.momentum,
                    weight_decay=args.weight_decay, cd_k=args.cd_k, persistent=args.pcd, num_chains=args.chains,
                    sparsity_target=args.sparsity_target, sparsity_cost=args.sparsity_cost, seed=args.seed,
                    progress=not args.no_progress)
    if args.resume:
        meta = read_payload(args.resume).get("meta", {})
        trainer = Trainer.load(args.resume, **settings)
        name = meta.get("data", args.data)
        model = trainer.model
    else:
        name = args.data or ("bars" if args.model == "caprbm" else "digits")
        if args.model == "caprbm" and name == "digits":
            raise UsageError("--model caprbm needs complex data (bars, mnist-cwt or a complex .npy); "
                             "the digits are real: use --model bernoulli")
        if args.model == "bernoulli" and name in ("bars", "mnist-cwt"):
            raise UsageError(f"--data {name} is complex: use --model caprbm")
        meta = {"data": name}
    num = _given(args.num_data, meta.get("num_data", DEFAULT_ROWS.get(name)))
    ds = load_rbm_data(name, num=num, seed=args.seed, mnist_dir=args.mnist_dir)
    if not args.resume:
        hidden = _given(args.hidden, DEFAULT_HIDDEN.get(name, 100))
        nv = ds.data.shape[1]
        model = (CAPRBM(nv, hidden, coupling=not args.no_coupling, seed=args.seed) if args.model == "caprbm"
                 else RBM(nv, hidden, seed=args.seed))
        meta.update({"num_data": int(ds.data.shape[0]), "image_shape": ds.image_shape, **ds.meta})
        trainer = Trainer(model, RBMTrainConfig(**settings), meta)
    print(f"training {type(model).__name__} ({model.extra_repr()}) on {ds.data.shape[0]} rows of {name}, "
          f"{'PCD' if args.pcd else 'CD'}-{args.cd_k}, epochs {trainer.epoch + 1}..{args.epochs}", flush=True)

    def report(t):
        row = t.history[-1]
        print(f"epoch {row['epoch']}: reconstruction error {row['reconstruction_error']:.4g}, hidden activity "
              f"{row['hidden_activity']:.3f}, free energy of data {row['free_energy_data']:.4g}, "
              f"{row['seconds']:.1f} s", flush=True)

    trainer.fit(ds.data, checkpoint=args.out, log=args.log, callback=report)
    print(f"wrote {args.out}")
    return 0
