"""Every subcommand refuses bad input in one line (exit 2) before any work or output; bugs keep their traceback.

`{tmp}` in an argument is the test's folder, holding `garbage.pt`, `garbage.npy`, `garbage.mat` (random bytes)
and `file` (a regular file, so `{tmp}/file/out` cannot be made).
"""
import numpy as np
import pytest

from entropy_mcmc import cli
from entropy_mcmc.cli import common

INPUTS = ("garbage.pt", "garbage.npy", "garbage.mat", "file")
UNWRITABLE = ("{tmp}/file/out", "/proc/x")
COUNT = "expected a positive integer"
NONNEG = "expected a non-negative integer"
FINITE = "expected a positive finite number"
NONNEG_FINITE = "expected a non-negative finite number"
PROBABILITY = "expected a number in (0, 1)"
UNIT = "expected a number in [0, 1)"
SNAPSHOTS = "expected comma-separated positive step counts"
AT_LEAST_2 = "expected an integer of at least 2"
STEPS = "expected three non-negative integers"
SIZE = "expected HxW in pixels"


def _sample(*extra, kernel="hmc"):
    return ["sample", "--target", "german", "--kernel", kernel, "--out", "{tmp}/out.nc", *extra]


def _train_sampler(*extra):
    return ["train-sampler", "--target", "scg2", "--out", "{tmp}/out.pt", *extra]


def _train_ebm(*extra, data="two-moons"):
    return ["train-ebm", "--data", data, "--out", "{tmp}/out.pt", *extra]


def _sample_ebm(*extra, model="{tmp}/garbage.pt"):
    return ["sample-ebm", "--model", model, "--out", "{tmp}/out.npz", *extra]


def _train_rbm(*extra, data="bars"):
    return ["train-rbm", "--data", data, "--out", "{tmp}/out.pt", *extra]


def _sample_rbm(*extra, model="{tmp}/garbage.pt"):
    return ["sample-rbm", "--model", model, "--out", "{tmp}/out.png", *extra]


def _cluster(*extra, data="digits"):
    return ["cluster", "--data", data, "--out", "{tmp}/out", *extra]


def _bench(*extra):
    return ["bench", "--tiny", "--out", "{tmp}/out", *extra]


CASES = [
    # sample
    *[(_sample(flag, value), f"{flag}: {message}") for flag, value, message in (
        ("--chains", "0", COUNT), ("--chains", "-1", COUNT), ("--draws", "0", COUNT), ("--warmup", "-1", NONNEG),
        ("--thin", "0", COUNT), ("--threads", "-1", NONNEG), ("--seed", "-1", "seed must lie"),
        ("--leapfrog-steps", "0", COUNT), ("--max-leapfrog-steps", "-3", COUNT), ("--step-size", "nan", FINITE),
        ("--step-size", "inf", FINITE), ("--init-scale", "nan", FINITE), ("--target-accept", "nan", PROBABILITY),
        ("--step-size-jitter", "nan", UNIT))],
    (_sample("--max-tree-depth", "0", kernel="nuts"), f"--max-tree-depth: {COUNT}"),
    (_sample("--anneal-steps", "0", kernel="annealed-langevin"), f"--anneal-steps: {COUNT}"),
    (_sample("--anneal-steps", "-5", kernel="annealed-langevin"), f"--anneal-steps: {COUNT}"),
    (_sample("--t-max", "nan", kernel="annealed-langevin"), f"--t-max: {FINITE}"),
    (_sample("--t-min", "inf", kernel="annealed-langevin"), "t_min"),  # a check across flags, before any output
    (_sample("--t-min", "200", kernel="annealed-langevin"), "t_min"),
    (_sample("--sigma0", "0", kernel="annealed-langevin"), f"--sigma0: {FINITE}"),
    (_sample("--mixture-share", "nan", "--sampler", "{tmp}/garbage.pt", kernel="learned"), "--mixture-share"),
    (_sample("--sampler", "{tmp}/missing.pt", kernel="learned"), "missing.pt"),
    (_sample("--sampler", "{tmp}/garbage.pt", kernel="learned"), "not a learned sampler file"),
    (_sample("--sampler", "{tmp}/garbage.pt", "--out", "{tmp}/file/out", kernel="learned"), "--out"),
    *[(_sample("--out", out), "--out") for out in UNWRITABLE],
    (_sample(kernel="caprbm-gibbs"), "caprbm-gibbs"),
    (_sample(kernel="bernoulli-gibbs"), "bernoulli-gibbs"),
    # train-sampler
    *[(_train_sampler(flag, value), f"{flag}: {message}") for flag, value, message in (
        ("--steps", "0", COUNT), ("--batch-size", "-1", COUNT), ("--width", "0", COUNT),
        ("--flow-steps", "0", COUNT), ("--threads", "-1", NONNEG), ("--lr", "nan", FINITE), ("--eps", "inf", FINITE),
        ("--target-accept", "nan", PROBABILITY))],
    *[(["train-sampler", "--target", "scg2", "--out", out], "--out") for out in UNWRITABLE],
    (["train-sampler", "--target", "nope", "--out", "{tmp}/out.pt"], "unknown target 'nope'"),
    # train-ebm
    *[(_train_ebm(flag, value), f"{flag}: {message}") for flag, value, message in (
        ("--k-steps", "-1", NONNEG), ("--buffer-size", "0", COUNT), ("--steps", "0", COUNT), ("--num", "0", COUNT),
        ("--batch-size", "-1", COUNT), ("--width", "0", COUNT), ("--log-every", "0", COUNT),
        ("--checkpoint-every", "-1", NONNEG), ("--threads", "-1", NONNEG), ("--step-size", "nan", FINITE),
        ("--lr", "inf", FINITE), ("--sigma0", "nan", FINITE), ("--sigma-min", "0", FINITE),
        ("--sigma-max", "inf", FINITE), ("--reinit-fraction", "nan", UNIT),
        ("--energy-penalty", "inf", NONNEG_FINITE), ("--target-accept", "nan", PROBABILITY))],
    (_train_ebm(data="{tmp}/missing.npy"), "missing.npy"),
    (_train_ebm(data="{tmp}/garbage.npy"), "garbage.npy"),
    (_train_ebm("--resume"), "--resume"),
    (_train_ebm("--loss", "ml", "--kernel", "nope"), "--kernel: unknown kernel 'nope'"),
    (_train_ebm("--loss", "ml", "--kernel", "caprbm-gibbs"), "caprbm-gibbs"),
    (_train_ebm("--log", "{tmp}/file/log.csv"), "--log"),
    *[(["train-ebm", "--data", "two-moons", "--out", out], "--out") for out in UNWRITABLE],
    (["train-ebm", "--data", "{tmp}/garbage.npy", "--out", "/proc/x"], "--out"),
    # sample-ebm
    *[(_sample_ebm(flag, value), f"{flag}: {message}") for flag, value, message in (
        ("--num", "0", COUNT), ("--steps", "0", COUNT), ("--steps", "-2", COUNT), ("--threads", "-1", NONNEG),
        ("--step-size", "nan", FINITE), ("--t-max", "inf", FINITE), ("--t-min", "nan", FINITE))],
    (_sample_ebm(model="{tmp}/missing.pt"), "missing.pt"),
    (_sample_ebm(), "garbage.pt"),
    (_sample_ebm("--kernel", "caprbm-gibbs"), "caprbm-gibbs"),
    (_sample_ebm("--kernel", "nope"), "--kernel: unknown kernel 'nope'"),
    (_sample_ebm("--out", "{tmp}/out.txt"), "expected a .npz or .png path"),
    *[(_sample_ebm("--out", out + ".npz"), "--out") for out in UNWRITABLE],
    # train-rbm
    *[(_train_rbm(flag, value), f"{flag}: {message}") for flag, value, message in (
        ("--num-data", "0", COUNT), ("--hidden", "-1", COUNT), ("--epochs", "0", COUNT),
        ("--batch-size", "0", COUNT), ("--cd-k", "0", COUNT), ("--chains", "0", COUNT), ("--threads", "-1", NONNEG),
        ("--lr", "nan", FINITE), ("--momentum", "nan", UNIT), ("--weight-decay", "inf", NONNEG_FINITE),
        ("--sparsity-target", "nan", PROBABILITY), ("--sparsity-cost", "nan", NONNEG_FINITE))],
    (_train_rbm(data="{tmp}/missing.npy"), "missing.npy"),
    (_train_rbm(data="{tmp}/garbage.npy"), "garbage.npy"),
    (_train_rbm("--resume", "{tmp}/missing.pt"), "missing.pt"),
    (_train_rbm("--resume", "{tmp}/garbage.pt"), "not an RBM checkpoint"),
    (_train_rbm("--model", "caprbm", data="digits"), "needs complex data"),
    (_train_rbm("--log", "{tmp}/file/log.csv"), "--log"),
    *[(["train-rbm", "--data", "bars", "--out", out], "--out") for out in UNWRITABLE],
    # sample-rbm
    *[(_sample_rbm(flag, value), f"{flag}: {message}") for flag, value, message in (
        ("--steps", "0", COUNT), ("--chains", "-1", COUNT), ("--threads", "-1", NONNEG),
        ("--snapshots", "0", SNAPSHOTS), ("--snapshots", "1,x", SNAPSHOTS), ("--snapshots", "5,-5", SNAPSHOTS))],
    (_sample_rbm(model="{tmp}/missing.pt"), "missing.pt"),
    (_sample_rbm(), "not an RBM checkpoint"),
    *[(_sample_rbm("--out", out), "--out") for out in UNWRITABLE],
    # cluster
    *[(_cluster(flag, value), f"{flag}: {message}") for flag, value, message in (
        ("--clusters", "0", AT_LEAST_2), ("--clusters", "1", AT_LEAST_2), ("--batch-size", "0", COUNT),
        ("--n-init", "0", COUNT), ("--z-dim", "-1", COUNT), ("--width", "0", COUNT), ("--max-side", "0", COUNT),
        ("--threads", "-1", NONNEG), ("--steps", "1,2", STEPS),
        ("--steps", "1,x,3", STEPS), ("--image-size", "0x0", SIZE), ("--image-size", "32", SIZE),
        ("--lam", "nan", NONNEG_FINITE), ("--lr", "nan", FINITE),
        ("--tau", "inf", FINITE), ("--eps-sq", "nan", FINITE), ("--cluster-eps-sq", "0", FINITE),
        ("--aug-noise", "nan", NONNEG_FINITE))],
    (_cluster("--steps=-1,0,0"), f"--steps: {STEPS}"),
    (_cluster(data="{tmp}/missing.mat"), "missing.mat"),
    (_cluster(data="{tmp}/garbage.mat"), "garbage.mat"),
    (_cluster(data="{tmp}/missing-folder"), "missing-folder"),
    *[(["cluster", "--data", "digits", "--out", out], "--out") for out in UNWRITABLE],
    # bench
    (_bench("--seed", "-1"), "seed must lie"),
    (_bench("--suite", "posteriordb", "--db", "{tmp}/missing", "--chains", "0"), f"--chains: {COUNT}"),
    (_bench("--suite", "posteriordb", "--db", "{tmp}/missing"), "missing"),
    (_bench("--suite", "posteriordb", "--db", "{tmp}/file"), "file"),
    (_bench("--kernels", "caprbm-gibbs"), "unknown kernel 'caprbm-gibbs'"),
    (_bench("--targets", "nope"), "unknown target 'nope'"),
    *[(["bench", "--tiny", "--out", out], "--out") for out in UNWRITABLE],
    # list
    (["list", "--chains", "0"], "unrecognized arguments"),
]


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    for name in INPUTS:
        (tmp_path / name).write_bytes(rng.bytes(256))
    return tmp_path


def _ids(case):
    return " ".join(case[0])


@pytest.mark.parametrize("argv, message", CASES, ids=[_ids(c) for c in CASES])
def test_bad_input_is_one_line_before_any_output(inputs, capsys, argv, message):
    argv = [a.replace("{tmp}", str(inputs)) for a in argv]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert message.replace("{tmp}", str(inputs)) in lines[0]
    assert sorted(p.name for p in inputs.iterdir()) == sorted(INPUTS)  # nothing written
    assert all((inputs / name).stat().st_size == 256 for name in INPUTS)


def test_zero_is_kept_where_it_means_something(capsys):
    """`--warmup 0` runs no warmup (a default would have run 500 steps)."""
    assert cli.main(["sample", "--target", "scg2", "--kernel", "rwm", "--chains", "2", "--warmup", "0", "--draws", "3",
                     "--no-progress", "--no-summary"]) == 0
    assert "0 warmup + 3 draws" in capsys.readouterr().out


def _deliberate(args):
    from entropy_mcmc.targets import check_target_name

    check_target_name("no-such-target")  # a `raise ValueError(...)` in the package


def _not_callable(args):
    common.name_list("kernel", None)("hmc")  # TypeError: 'NoneType' object is not callable, inside the package


def _numpy_value_error(args):
    np.zeros(3).reshape(2)  # a ValueError raised inside numpy


def _index_error(args):
    return [][0]


def test_deliberate_library_error_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(cli.COMMANDS["list"], "run", _deliberate)
    with pytest.raises(SystemExit) as exc:
        cli.main(["list"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "no-such-target" in err


def test_oserror_about_a_given_path_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli.COMMANDS["sample-rbm"], "run", lambda args: open(args.model))
    with pytest.raises(SystemExit) as exc:
        cli.main(["sample-rbm", "--model", str(tmp_path / "gone.pt"), "--out", "x.png"])
    assert exc.value.code == 2 and "gone.pt" in capsys.readouterr().err


@pytest.mark.parametrize("run, error", [(_not_callable, TypeError), (_numpy_value_error, ValueError),
                                        (_index_error, IndexError),
                                        (lambda args: open("/nonexistent-by-the-code/x"), FileNotFoundError)])
def test_bugs_keep_their_traceback(monkeypatch, capsys, run, error):
    monkeypatch.setattr(cli.COMMANDS["list"], "run", run)
    with pytest.raises(error):
        cli.main(["list"])
    assert capsys.readouterr().err == ""
