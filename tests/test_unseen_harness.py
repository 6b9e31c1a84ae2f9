"""The unseen-data harness (issue 23, item 1): its densities have the weights they state and exact draws lie in their
modes; its MMD tells a density from a shifted copy; its goals fail deliberately wrong samplers; `bench --suite
unseen --quick` runs train-ebm and sample-ebm end to end."""
import dataclasses
import json

import numpy as np
import pytest

from entropy_mcmc import cli
from entropy_mcmc.benchmarks.unseen import KINDS, make_density, mmd, mode_shares, score, two_sample_baseline

SEEDS = (11, 2024, 987654321)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_exact_draws_have_the_stated_weights_and_lie_in_modes(kind, seed):
    d = make_density(kind, seed)
    w = d.weights
    assert w.sum() == pytest.approx(1) and w.min() >= 0.1 and w.max() >= 2 * w.min()
    n = 10000
    s = mode_shares(d, d.sample(n, np.random.default_rng(seed)))
    mcse = np.sqrt(w * (1 - w) / s["counts"].sum())
    assert np.all(np.abs(s["shares"] - w) <= 4 * mcse), (s["shares"], w)
    assert s["p_value"] > 1e-3
    assert s["in_modes"] >= 0.99 - 4 * np.sqrt(0.99 * 0.01 / n)


@pytest.mark.parametrize("kind", KINDS)
def test_far_and_nonfinite_points_are_in_no_mode(kind):
    d = make_density(kind, 5)
    far = d.offset + d.scale * np.array([[1e3, 0.0], [0.0, -1e3], [1e4, 1e4]])
    assert (d.mode_of(far) == -1).all()
    assert (d.mode_of(np.array([[np.nan, 0.0], [np.inf, 1.0]])) == -1).all()
    if kind in ("rings", "spiral"):  # the centre lies inside the first ring and the arms' start
        assert d.mode_of(d.offset[None])[0] == -1


def test_densities_differ_by_seed_and_lie_far_from_the_unit_box():
    for kind in KINDS:
        a, b = make_density(kind, 1), make_density(kind, 2)
        assert not np.allclose(a.scale, b.scale)
        for d in (a, b):
            x = d.sample(500, np.random.default_rng(0))
            centre = np.abs(x.mean(0)) / x.std(0)
            assert centre.max() > 3 or x.std(0).max() > 10 or x.std(0).max() < 0.1  # not near N(0, 1)
        assert make_density(kind, 1).describe() == a.describe()  # the seed reproduces the density


def test_mmd_is_near_zero_for_the_same_density_and_large_for_a_shifted_copy():
    d = make_density("mixture", 3)
    rng = np.random.default_rng(0)
    n = 1000
    base = two_sample_baseline(d, n, range(5))
    same = [mmd(d.canonical(d.sample(n, rng)), d.canonical(d.sample(n, rng))) for _ in range(5)]
    assert abs(np.mean(same)) <= 3 * np.std(same) / np.sqrt(4)  # unbiased: mean 0
    assert max(same) <= (3 * base) ** 2
    shifted = mmd(d.canonical(d.sample(n, rng)) + 3.0, d.canonical(d.sample(n, rng)))  # a few mode widths
    assert shifted > (5 * base) ** 2


def _wrong_samplers(d, n, rng):
    """Samplers failing each goal: the smallest and largest weights swapped, a tenth of the points uniform over a
    box around the modes, and the whole density stretched twice about its mean."""
    w = d.weights.copy()
    i, j = w.argmin(), w.argmax()
    w[[i, j]] = w[[j, i]]
    swapped = dataclasses.replace(d, weights=w).sample(n, rng)
    x = d.sample(n, rng)
    lo, hi = x.min(0), x.max(0)
    spread = np.where((np.arange(n) < n // 10)[:, None], lo + (hi - lo) * rng.random((n, 2)), x)
    z = d.canonical(d.sample(n, rng))
    wide = d.offset + d.scale * (2 * z - z.mean(0))
    return {"shares_ok": swapped, "in_modes_ok": spread, "mmd_ok": wide}


@pytest.mark.parametrize("kind", KINDS)
def test_exact_samplers_pass_and_wrong_ones_fail(kind):
    d = make_density(kind, 77)
    n = 2000
    rng = np.random.default_rng(1)
    reference = d.sample(n, rng)
    base = two_sample_baseline(d, n, range(3))
    exact = score(d, d.sample(n, rng), reference, base)
    assert exact["passed"], exact
    for goal, x in _wrong_samplers(d, n, rng).items():
        s = score(d, x, reference, base)
        assert not s[goal] and not s["passed"], (goal, s)
        if goal == "shares_ok":
            assert s["p_value"] < 1e-6


def test_bench_unseen_quick_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "unseen"
    assert cli.main(["bench", "--suite", "unseen", "--quick", "--densities", "rings", "--losses", "mdsm", "--seed",
                     "4242", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "seed 4242 (rerun with --seed 4242)" in text
    record = json.loads((out / "unseen.json").read_text())
    assert record["seed"] == 4242 and record["mode"] == "quick"
    rows = {r["config"]: r for r in record["rows"]}
    assert set(rows) == {"exact", "mdsm"}
    assert rows["exact"]["in_modes"] >= 0.95 and 0 <= rows["mdsm"]["in_modes"] <= 1
    assert np.isfinite(rows["mdsm"]["mmd_ratio"]) and rows["mdsm"]["train_s"] > 0
    name = rows["mdsm"]["density"]
    train, sample = record["commands"][f"{name} mdsm"]
    assert train.startswith("entropy-mcmc train-ebm --data ") and "--loss mdsm" in train
    assert sample.startswith("entropy-mcmc sample-ebm --model ")
    for f in ("unseen.csv", "unseen.md", f"{name}/data.npy", f"{name}/mdsm.npz", f"{name}/mdsm.png"):
        assert (out / f).stat().st_size > 0, f
    assert np.load(out / name / "data.npy").shape == (2000, 2)


@pytest.mark.parametrize("argv, message", [
    (["--suite", "unseen", "--targets", "scg2"], "--targets do not apply to --suite unseen"),
    (["--suite", "unseen", "--densities", "moons"], "unknown density 'moons'"),
    (["--suite", "unseen", "--losses", "mdsm", "--kernels", "mala"], "--losses has no ml"),
    (["--densities", "rings"], "--densities apply to --suite unseen"),
    (["--kernels", "learned"], "unknown kernel 'learned'"),
])
def test_bench_unseen_bad_arguments(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "--out", str(tmp_path / "out"), *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
