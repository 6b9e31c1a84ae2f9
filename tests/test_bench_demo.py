"""The demo's settings and labels: one-chain rows are judged on ESS (R-hat needs two chains) and say so, RWM is
labelled as the baseline, and --demo is refused with settings it replaces."""
import numpy as np
import pytest

from entropy_mcmc.benchmarks import suite
from entropy_mcmc.cli import main


def test_one_chain_is_judged_on_ess_and_its_rhat_is_not_applicable():
    rng = np.random.default_rng(0)
    one = suite._metrics(rng.standard_normal((1, 400, 3)), 400, 400, 1.0, 1.0)
    assert one["converged"] and np.isnan(one["max_rhat"])
    assert suite._rhat_text({"chains": 1, "max_rhat": one["max_rhat"]}) == "R-hat n/a (1 chain)"
    stuck = rng.standard_normal((4, 400, 3)) + np.arange(4)[:, None, None]  # four chains in four places
    m = suite._metrics(stuck, 400, 1600, 1.0, 1.0)
    assert not m["converged"] and suite._rhat_text({"chains": 4, "max_rhat": m["max_rhat"]}).startswith("R-hat 1.")


def test_demo_picks_the_kernels_a_user_should_and_labels_the_baseline():
    assert suite.MODES["demo"].chains >= 64 and "nuts" in suite.DEMO_KERNELS and "chees-hmc" in suite.DEMO_KERNELS
    assert set(suite.BASELINES) <= set(suite.DEMO_KERNELS)


@pytest.mark.parametrize("extra", [["--quick"], ["--suite", "posteriordb", "--db", "x"]])
def test_demo_refuses_settings_it_replaces(extra, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--demo", *extra, "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2 and "--demo" in capsys.readouterr().err
