"""Declared kernel capabilities: every registered kernel has them, a kernel/target mismatch is one line before any
work (library and CLI), `entropy-mcmc list` shows them, and no code outside the registry compares kernel names."""
import re
from pathlib import Path

import pytest
import torch

from entropy_mcmc.cli import main
from entropy_mcmc.samplers import Capabilities, build_kernel, get_kernel_spec, kernel_names
from entropy_mcmc.samplers.registry import STATE_SPACES
from entropy_mcmc.targets import Gaussian

PACKAGE = Path(__file__).resolve().parents[1] / "entropy_mcmc"
NOT_REAL = [n for n in kernel_names() if get_kernel_spec(n).capabilities.state_space != "real"]


def test_every_kernel_declares_a_known_state_space():
    for name in kernel_names():
        caps = get_kernel_spec(name).capabilities
        assert isinstance(caps, Capabilities) and caps.state_space in STATE_SPACES, name
    assert {"binary", "phase", "categorical"} <= {get_kernel_spec(n).capabilities.state_space for n in NOT_REAL}
    with pytest.raises(ValueError, match="state_space"):
        Capabilities(state_space="complex")


def test_declarations_match_what_the_kernels_are():
    caps = {n: get_kernel_spec(n).capabilities for n in ("rwm", "mala", "hmc", "nuts", "ula", "learned")}
    assert not caps["rwm"].needs_gradient and caps["mala"].needs_gradient
    assert not caps["ula"].exact and caps["hmc"].exact and caps["nuts"].mass_matrix
    assert caps["learned"].trainable and not caps["learned"].step_size


@pytest.mark.parametrize("name", NOT_REAL)
def test_a_kernel_on_a_target_of_another_state_space_is_one_line(name):
    space = get_kernel_spec(name).capabilities.state_space
    with pytest.raises(ValueError, match=f"moves {space} states, but target 'gaussian' has real states"):
        build_kernel(name, Gaussian(torch.zeros(2), torch.eye(2)))


@pytest.mark.parametrize("name", NOT_REAL)
def test_cli_sample_refuses_the_mismatch_before_work(name, tmp_path, capsys):
    out = tmp_path / "run.nc"
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--kernel", name, "--target", "icg50", "--chains", "2", "--draws", "10", "--warmup", "0",
              "--out", str(out)])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and "real states" in err, err
    assert captured.out == "" and not out.exists()


def test_list_shows_the_declarations(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "capabilities: real, gradient, exact, step size, mass matrix" in out
    assert "capabilities: phase, no gradient, exact" in out


def test_no_code_outside_the_registry_compares_kernel_names():
    names = "|".join(re.escape(n) for n in kernel_names())
    compare = re.compile(rf"""(==|!=|\bin\b|\bnot in\b)\s*[\(\[]?[^\n]*?["']({names})["']"""
                         rf"""|["']({names})["']\s*(==|!=)""")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).as_posix() in ("samplers/registry.py", "benchmarks/peers.py"):
            continue  # the registry itself; the peers module names BlackJAX's algorithms, not our kernels
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"\bif\b|\belif\b|\bwhile\b|==|!=", code) and compare.search(code):
                offenders.append(f"{path.relative_to(PACKAGE)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
