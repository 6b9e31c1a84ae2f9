"""Plugins: a distribution installed for the test (a module plus its `.dist-info` on the path) adds a kernel and a
target through the `entropy_mcmc.kernels` and `entropy_mcmc.targets` entry points; a broken one is reported by
name and the others still load."""
import importlib
import os
import subprocess
import sys
import textwrap

import arviz as az
import numpy as np
import pytest
import torch

from entropy_mcmc.diagnostics import mcse
from entropy_mcmc.plugins import PluginGroup
from entropy_mcmc.samplers import registry
from entropy_mcmc import targets as target_registry

TOYPLUG = textwrap.dedent('''
    """A toy plugin for entropy_mcmc."""
    import torch

    from entropy_mcmc.samplers import RandomWalkMetropolis
    from entropy_mcmc.samplers.registry import KernelSpec
    from entropy_mcmc.targets import Gaussian


    class ToyKernel(RandomWalkMetropolis):
        """Random-walk Metropolis under another name."""


    TOY = KernelSpec(ToyKernel, "toy random walk from a plugin", step_size=0.37, target_accept=0.3)


    def toytarget():
        """a 3-d Gaussian centred at (1, 2, 3) from a plugin"""
        return Gaussian(torch.tensor([1.0, 2.0, 3.0]), torch.diag(torch.tensor([0.25, 0.5, 1.0])), name="toytarget")
''')

BROKEN = 'raise RuntimeError("this plugin is broken on purpose")\n'

ENTRY_POINTS = textwrap.dedent("""
    [entropy_mcmc.kernels]
    broken = brokenplug:KERNEL
    toy = toyplug:TOY

    [entropy_mcmc.targets]
    brokentarget = brokenplug:target
    toytarget = toyplug:toytarget
""")

TOY_MEAN = np.array([1.0, 2.0, 3.0])


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "toyplug.py").write_text(TOYPLUG)
    (root / "brokenplug.py").write_text(BROKEN)
    info = root / "toyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


def cli(plugin_dir, *args, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "entropy_mcmc.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=cwd)
    return proc


def test_list_shows_the_plugin_its_source_and_defaults_and_names_the_broken_one(plugin_dir):
    proc = cli(plugin_dir, "list")
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith("  ")}
    assert "[toyplug 0.1]" in lines["toy"] and "toy random walk from a plugin" in lines["toy"]
    assert "step_size=0.37" in lines["toy"] and "target_accept=0.3" in lines["toy"]
    assert "[toyplug 0.1]" in lines["toytarget"] and "centred at (1, 2, 3)" in lines["toytarget"]
    assert "[built-in]" in lines["mala"] and "[built-in]" in lines["icg50"]
    assert "broken" not in lines and "brokentarget" not in lines
    out = proc.stdout
    assert "broken kernel plugin broken: RuntimeError: this plugin is broken on purpose" in out
    assert "broken target plugin brokentarget: RuntimeError: this plugin is broken on purpose" in out
    # without the plugin on the path none of it appears
    plain = subprocess.run([sys.executable, "-m", "entropy_mcmc.cli", "list"], capture_output=True, text=True,
                           timeout=120)
    assert plain.returncode == 0 and "toyplug" not in plain.stdout and "broken" not in plain.stdout


def test_sample_uses_the_plugged_in_kernel_and_target(plugin_dir, tmp_path):
    out = tmp_path / "toy.nc"
    proc = cli(plugin_dir, "sample", "--kernel", "toy", "--target", "toytarget", "--chains", "4", "--warmup", "1000",
               "--draws", "1000", "--seed", "2", "--no-progress", "--no-summary", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    idata = az.from_netcdf(out)
    x = next(iter(idata.posterior.data_vars.values())).values
    assert x.shape == (4, 1000, 3)
    err = np.abs(x.mean((0, 1)) - TOY_MEAN) / mcse(x)
    assert np.all(err < 4.5), err
    # step-size adaptation aimed at the plugin's target acceptance (0.3); RWM's 0.234 gives 0.24 here
    acc = float(idata.sample_stats["acceptance_rate"].mean())
    assert abs(acc - 0.3) < 0.035, acc
    # the broken plugin is named when asked for
    bad = cli(plugin_dir, "sample", "--kernel", "toy", "--target", "brokentarget", "--draws", "5")
    assert bad.returncode == 2 and "brokentarget" in bad.stderr and "failed to load" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.fixture
def installed(plugin_dir, monkeypatch):
    """The plugin importable in this process, and the registries reloading entry points, restored afterwards."""
    monkeypatch.syspath_prepend(str(plugin_dir))
    importlib.invalidate_caches()
    monkeypatch.setattr(registry, "_KERNELS", dict(registry._KERNELS))
    monkeypatch.setattr(registry, "PLUGINS", PluginGroup(registry.GROUP))
    monkeypatch.setattr(target_registry, "_REGISTRY", dict(target_registry._REGISTRY))
    monkeypatch.setattr(target_registry, "_SOURCES", dict(target_registry._SOURCES))
    monkeypatch.setattr(target_registry, "PLUGINS", PluginGroup(target_registry.GROUP))
    yield
    for name in ("toyplug", "brokenplug"):
        sys.modules.pop(name, None)


def test_build_kernel_and_the_registries_use_the_plugin(installed):
    from entropy_mcmc.plugins import PluginWarning
    from entropy_mcmc.samplers import StepSizeAdaptation, build_kernel, get_kernel_spec, kernel_names
    from entropy_mcmc.targets import get_target

    assert get_kernel_spec("toy").source == "toyplug 0.1"
    with pytest.warns(PluginWarning, match="'broken'"), \
            pytest.raises(ValueError, match=r"plugin 'broken' failed to load: RuntimeError: this plugin is broken"):
        get_kernel_spec("broken")
    names = kernel_names()
    assert "toy" in names and "broken" not in names and "mala" in names
    target = get_target("toytarget")
    assert target.name == "toytarget"
    with pytest.warns(PluginWarning, match="'brokentarget'"), pytest.raises(ValueError, match="'brokentarget' failed"):
        get_target("brokentarget")

    kernel = build_kernel("toy", target, num_warmup=10)
    assert type(kernel.base).__name__ == "ToyKernel" and type(kernel.base).__module__ == "toyplug"
    assert isinstance(kernel, StepSizeAdaptation) and kernel.target_accept == 0.3
    assert kernel.base.step_size == 0.37
    assert type(build_kernel("toy", target, num_warmup=0)).__name__ == "ToyKernel"


@pytest.mark.filterwarnings("ignore::entropy_mcmc.plugins.PluginWarning")
def test_pyro_kernel_uses_the_plugged_in_kernel(installed):
    import pyro
    import pyro.distributions as dist
    from pyro.infer import MCMC

    from entropy_mcmc.pyro import PyroKernel

    def model():
        pyro.sample("theta", dist.Normal(torch.tensor(1.0, dtype=torch.float64), 0.5))

    pyro.set_rng_seed(0)
    kernel = PyroKernel(model, kernel="toy")
    mcmc = MCMC(kernel, num_samples=1500, warmup_steps=300, num_chains=1, disable_progbar=True)
    mcmc.run()
    assert type(kernel.sampler.base).__name__ == "ToyKernel"
    theta = mcmc.get_samples()["theta"].numpy()
    assert abs(theta.mean() - 1.0) < 4.5 * mcse(theta[None]), theta.mean()


def test_entry_points_load_by_the_name_asked_for(installed):
    """Names come from the metadata without importing a plugin; asking for one imports that one only; listing
    with details loads them all."""
    from entropy_mcmc.plugins import PluginWarning
    from entropy_mcmc.samplers import get_kernel_spec, kernel_names
    from entropy_mcmc.samplers.registry import kernel_specs
    from entropy_mcmc.targets import check_target_name, target_names, target_sources

    assert {"toy", "broken"} <= set(kernel_names()) and {"toytarget", "brokentarget"} <= set(target_names())
    assert "toyplug" not in sys.modules and "brokenplug" not in sys.modules
    assert get_kernel_spec("toy").step_size == 0.37 and check_target_name("toytarget") == "toytarget"
    assert "toyplug" in sys.modules and "brokenplug" not in sys.modules
    assert "broken" not in registry.PLUGINS.errors and "brokentarget" not in target_registry.PLUGINS.errors
    with pytest.warns(PluginWarning, match="'broken'"):
        specs = kernel_specs()
    assert "toy" in specs and "broken" not in specs and "broken" in registry.PLUGINS.errors
    assert specs["toy"] is get_kernel_spec("toy")  # loaded once: no "name taken" against itself
    with pytest.warns(PluginWarning, match="'brokentarget'"):
        sources = target_sources()
    assert sources["toytarget"][0] == "toyplug 0.1" and "brokentarget" not in sources
    assert "toy" not in registry.PLUGINS.errors and "toytarget" not in target_registry.PLUGINS.errors
    assert "broken" not in kernel_names() and "brokentarget" not in target_names()


def test_a_plugin_may_not_take_a_built_in_name(tmp_path, monkeypatch):
    """A plugin named like a built-in kernel is never loaded by name (the built-in wins) and is reported when
    every plugin is listed."""
    info = tmp_path / "clash-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clash\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[entropy_mcmc.kernels]\nhmc = entropy_mcmc.samplers.registry:hmc\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_KERNELS", dict(registry._KERNELS))
    monkeypatch.setattr(registry, "PLUGINS", PluginGroup(registry.GROUP))
    builtin = registry.get_kernel_spec("hmc")
    assert builtin.source == "built-in" and "hmc" not in registry.PLUGINS.errors
    assert registry.kernel_names().count("hmc") == 1
    assert registry.kernel_specs()["hmc"] is builtin
    assert "taken by built-in; plugin from clash 0.1 ignored" in registry.PLUGINS.errors["hmc"]
