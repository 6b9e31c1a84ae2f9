"""`entropy-mcmc sample-ebm`: sample a trained energy model by annealed Langevin (eq. 3.8) and the denoising
jump (eq. 3.9), or inpaint images.

    entropy-mcmc sample-ebm --model moons.pt --num 1000 --seed 0 --out moons.npz
    entropy-mcmc sample-ebm --model moons.pt --num 1000 --seed 0 --out moons.png     # scatter over the data
    entropy-mcmc sample-ebm --model digits.pt --num 64 --inpaint bottom-half --out inpaint.png
    entropy-mcmc sample-ebm --model moons-ml.pt --num 1000 --steps 1000 --out moons.npz   # its training kernel
    entropy-mcmc sample-ebm --model moons-ml.pt --from-buffer --kernel mala --out moons.npz
    entropy-mcmc sample-ebm --model mix-ml.pt --kernel mala --replicas 8 --out mix.npz   # mode weights right

A model trained by maximum likelihood (`train-ebm --loss ml`) is sampled by `--steps` steps of the kernel it was
trained with (its adapted step size, or its trained learned sampler) unless `--kernel` names another, from noise
or from its saved replay buffer (`--from-buffer`); with `--replicas R` the kernel runs inside replica exchange
(parallel tempering, `samplers.replica_exchange`), which weighs modes one chain cannot cross between exactly; its
`.npz` holds `samples`, `acceptance` (of the b = 1 replica) and `kernel`.

`.npz` holds `samples` (data coordinates), `noisy` (before the jump), `temperature` and `mean_energy` (the
trace, Figure B.7B); `.png` is a scatter with the data (2-D) or an image grid.
"""
from __future__ import annotations

import argparse

from . import common

HELP = "sample a trained energy model (annealed Langevin, denoising jump, inpainting); write .npz or .png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..ebm_training.inpainting import MASKS

    parser.add_argument("--model", required=True, metavar="PATH", help="checkpoint written by train-ebm")
    parser.add_argument("--num", type=common.positive_int, default=1000, help="number of samples (chains)")
    parser.add_argument("--seed", type=common.seed, default=0)
    parser.add_argument("--out", required=True, metavar="PATH", help=".npz (arrays) or .png (picture)")
    parser.add_argument("--steps", type=common.positive_int, default=None,
                        help="annealing steps (2700), or kernel steps for a model trained with --loss ml (1000)")
    parser.add_argument("--kernel", type=common.real_kernel, default=None,
                        help="--loss ml models: the kernel (default: the one it was trained with)")
    parser.add_argument("--from-buffer", action="store_true", help="--loss ml models: start from the saved "
                        "replay buffer instead of noise")
    parser.add_argument("--replicas", type=common.replicas, default=None,
                        help="--loss ml models: run the kernel inside replica exchange with R temperatures "
                             "(geometric up to --max-temperature): mode weights right where a chain cannot cross "
                             "between modes (default: as trained)")
    parser.add_argument("--max-temperature", type=common.max_temperature, default=None,
                        help="--loss ml models with --replicas: the hottest temperature of the ladder (30)")
    parser.add_argument("--step-size", type=common.positive_float, default=0.02, help="eps of eq. 3.8 (0.02)")
    parser.add_argument("--schedule", choices=("thesis", "geometric", "linear", "cosine", "constant"),
                        default="thesis", help="temperature schedule (thesis: Figure B.7B's shape)")
    parser.add_argument("--t-max", type=common.positive_float, default=100.0, help="initial temperature (100)")
    parser.add_argument("--t-min", type=common.positive_float, default=1.0, help="temperature the cooling reaches (1)")
    parser.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=True,
                        help="end with the single-step denoising jump (default on)")
    parser.add_argument("--inpaint", choices=MASKS, default=None,
                        help="images: keep this part of --num data images and sample the rest")
    parser.add_argument("--data", default=None, help="data for --inpaint and the .png scatter (default: the "
                        "training data when it is built in)")
    parser.add_argument("--device", type=common.device, default="cpu")
    parser.add_argument("--threads", type=common.nonneg_int, default=1)
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import numpy as np
    import torch

    from ..ebm_training.data import IMAGES, TOYS, load_data
    from ..ebm_training.inpainting import image_mask
    from ..ebm_training.plots import image_grid, scatter_2d
    from ..ebm_training.sampling import sample_ebm
    from ..ebm_training.trainer import load_model

    if not args.out.endswith((".npz", ".png")):
        raise common.UsageError(f"--out {args.out}: expected a .npz or .png path")
    common.check_writable_file(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, state = load_model(args.model, args.device)
    scatter = _scatter_data(args, state)
    if state["config"]["loss"] == "ml":
        return _run_ml(args, state, scatter)
    if args.kernel or args.from_buffer or args.replicas or args.max_temperature:
        raise common.UsageError("--kernel, --from-buffer, --replicas and --max-temperature apply to models trained "
                                "with --loss ml")
    if args.steps is None:
        args.steps = 2700
    dtype = next(model.parameters()).dtype
    shift = state["normalization"]["shift"].to(dtype)
    scale = state["normalization"]["scale"].to(dtype)
    event = list(state["data"]["event_shape"])
    images = len(event) == 3
    data_name = args.data or (state["data"].get("name") if state["data"].get("name") in TOYS + IMAGES else None)
    mask = reference = truth = None
    if args.inpaint:
        if not images:
            raise common.UsageError("--inpaint needs a model of images")
        if data_name is None:
            raise common.UsageError("--inpaint needs --data (the images to complete)")
        truth, _ = load_data(data_name, num=args.num, seed=args.seed + 1, dtype=dtype)
        if list(truth.shape[1:]) != event:
            raise ValueError(f"--data images have shape {list(truth.shape[1:])}, the model takes {event}")
        mask = image_mask(args.inpaint, event)
        reference = ((truth - shift) / scale).to(args.device)
    init_mean = 0.5 if images else 0.0
    out = sample_ebm(model, reference.shape[0] if reference is not None else args.num, seed=args.seed,
                     step_size=args.step_size, schedule=args.schedule, anneal_steps=args.steps, t_max=args.t_max,
                     t_min=args.t_min, denoise=args.denoise, mask=mask, reference=reference, init_mean=init_mean,
                     progress=not args.no_progress, dtype=dtype, device=args.device)
    samples = (out.samples.cpu() * scale + shift)
    noisy = (out.noisy.cpu() * scale + shift)
    print(f"entropy-mcmc sample-ebm: {samples.shape[0]} samples, {args.steps} steps of annealed Langevin "
          f"({args.schedule}, T from {args.t_max:g}, eps {args.step_size:g}) in {out.seconds:.1f} s"
          f"{', denoised' if args.denoise else ''}{', inpainting ' + args.inpaint if args.inpaint else ''}")
    if args.out.endswith(".npz"):
        np.savez(args.out, samples=samples.numpy(), noisy=noisy.numpy(), temperature=out.temperature.cpu().numpy(),
                 mean_energy=out.mean_energy.cpu().numpy())
    elif images:
        if truth is not None:
            k = min(16, samples.shape[0])
            masked = torch.where(mask, truth[:k], torch.zeros_like(truth[:k]))
            image_grid(torch.cat([masked, samples[:k], truth[:k]]), args.out, ncol=k,
                       row_labels=["known", "inpainted", "truth"])
        else:
            image_grid(samples[:256], args.out, ncol=16)
    else:
        scatter_2d(samples, scatter, args.out)
    print(f"wrote {args.out}")
    return 0


def _scatter_data(args, state):
    """For a .png of 2-D points, the data drawn under the samples (None when unknown), checked before sampling."""
    from ..ebm_training.data import TOYS, load_data

    event = list(state["data"]["event_shape"])
    if not args.out.endswith(".png") or len(event) == 3:
        return None
    if event != [2]:
        raise common.UsageError(f"--out .png draws 2-D points or images; these samples have shape {event}")
    name = args.data or (state["data"].get("name") if state["data"].get("name") in TOYS else None)
    return load_data(name, num=args.num, seed=args.seed + 1)[0] if name else None


def _run_ml(args, state, scatter) -> int:
    import numpy as np

    from ..ebm_training.ml_sampling import sample_ml
    from ..ebm_training.plots import image_grid, scatter_2d

    if args.inpaint:
        raise common.UsageError("--inpaint needs a score-matching model (annealed Langevin with clamped pixels)")
    steps = 1000 if args.steps is None else args.steps
    out = sample_ml(state, args.num, steps=steps, kernel=args.kernel, from_buffer=args.from_buffer, seed=args.seed,
                    device=args.device, progress=not args.no_progress, replicas=args.replicas,
                    max_temperature=args.max_temperature)
    samples = out.samples
    print(f"entropy-mcmc sample-ebm: {samples.shape[0]} samples, {steps} steps of {out.kernel}"
          f"{f' in {out.replicas} replicas' if out.replicas else ''} from "
          f"{'the replay buffer' if args.from_buffer else 'noise'} in {out.seconds:.1f} s, acceptance "
          f"{out.accept:.3f}")
    event = list(state["data"]["event_shape"])
    if args.out.endswith(".npz"):
        np.savez(args.out, samples=samples.numpy(), acceptance=np.float64(out.accept), kernel=np.str_(out.kernel))
    elif len(event) == 3:
        image_grid(samples[:256], args.out, ncol=16)
    else:
        scatter_2d(samples, scatter, args.out)
    print(f"wrote {args.out}")
    return 0
