"""The core stands alone (issue 22, item 2): `import entropy_mcmc` and building (and stepping) a core kernel import
no scientific stack beyond torch and no application package, and `entropy-mcmc --help` / `sample --help` import
not even torch. Each check runs in a fresh interpreter and reads its `sys.modules`."""
import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("sklearn", "scipy", "pandas", "arviz")
APPLICATIONS = ("entropy_mcmc.ebm_training", "entropy_mcmc.clustering", "entropy_mcmc.benchmarks",
                "entropy_mcmc.pyro", "entropy_mcmc.cli", "entropy_mcmc.samplers.learned")


def imported_after(code: str) -> set:
    """The modules in `sys.modules` after running `code` in a fresh interpreter."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def offending(modules: set, forbidden) -> list:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_import_entropy_mcmc_imports_only_itself():
    modules = imported_after("import entropy_mcmc")
    third_party = {m.split(".")[0] for m in modules} - set(sys.stdlib_module_names) - {"entropy_mcmc"}
    assert not {m for m in third_party if not m.startswith("_")}, third_party


def test_building_and_stepping_core_kernels_imports_no_application():
    modules = imported_after("""
        import torch
        from entropy_mcmc.samplers import build_kernel, kernel_names, sample
        from entropy_mcmc.targets import Gaussian

        assert "annealed-langevin" in kernel_names()  # named by its entry point, not loaded
        target = Gaussian(torch.zeros(3), torch.eye(3))
        for name in ("rwm", "mala", "hmc", "nuts", "chees-hmc", "ula"):
            kernel = build_kernel(name, target, num_warmup=5)
            sample(kernel, torch.zeros(4, 3), num_draws=3, num_warmup=5, progress=False, seed=0, warn=False)
    """)
    assert not offending(modules, HEAVY + APPLICATIONS)


@pytest.mark.parametrize("argv", [["--help"], ["sample", "--help"]])
def test_cli_help_imports_neither_torch_nor_a_subcommands_dependencies(argv):
    modules = imported_after(f"""
        from entropy_mcmc.cli import main
        try:
            main({argv!r})
        except SystemExit as stop:
            assert stop.code == 0
    """)
    assert not offending(modules, ("torch", "numpy") + HEAVY + APPLICATIONS[:-2] + ("entropy_mcmc.samplers.learned",
                                                                                  "entropy_mcmc.targets"))
