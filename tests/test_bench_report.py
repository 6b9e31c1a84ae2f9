"""The named experiments and the results report: `entropy-mcmc bench --list`, `--experiment NAME`, `--report`."""
import json

import pytest

from entropy_mcmc.benchmarks.experiments import EXPERIMENTS, regenerate_command
from entropy_mcmc.benchmarks.report import write_report
from entropy_mcmc.cli import main


def _record(name, command, tables, figures=()):
    return {"experiment": name, "description": f"what {name} measures", "expected": "1 min", "command": command,
            "child": f"python benchmarks/{name}.py", "cwd": "/repo", "date": "2026-12-04T10:00:00+00:00",
            "seconds": 61.5, "machine": {"cpu_model": "Test CPU", "cpus": 2, "platform": "Linux", "torch_threads": 1},
            "commit": "0123456789abcdef", "uncommitted_changes": False, "tables": tables, "figures": list(figures)}


def test_report_has_each_table_its_command_and_the_unconverged_rows_marked(tmp_path):
    results = tmp_path / "results"
    (results / "standard").mkdir(parents=True)
    (results / "standard" / "bench.png").write_bytes(b"\x89PNG fake")
    rows = [{"system": "ours", "kernel": "HMC", "chains": 256, "max_rhat": 1.003, "min_ess_bulk": 9000.0,
             "converged": True},
            {"system": "ours", "kernel": "RWM", "chains": 64, "max_rhat": 1.19, "min_ess_bulk": 239.0,
             "converged": False},
            {"system": "Pyro", "kernel": "NUTS", "chains": 1, "max_rhat": None, "min_ess_bulk": 150.0,
             "converged": True}]
    (results / "standard" / "result.json").write_text(json.dumps(_record(
        "standard", "entropy-mcmc bench --experiment standard --seed 0",
        [{"title": "bench.csv", "columns": list(rows[0]), "rows": rows, "min_ess": 400}], ["bench.png"])))
    (results / "nuts_hierarchical").mkdir()
    rows = [{"case": "funnel", "system": "ours NUTS", "max_rhat": 1.002, "min_ess_bulk": 812.0},
            {"case": "eight_schools_centred", "system": "pyro NUTS", "max_rhat": 1.004, "min_ess_bulk": 57.0}]
    (results / "nuts_hierarchical" / "result.json").write_text(json.dumps(_record(
        "nuts_hierarchical", "entropy-mcmc bench --experiment nuts_hierarchical --seed 3 --draws 500",
        [{"title": "nuts_hierarchical.json", "columns": list(rows[0]), "rows": rows, "min_ess": 400}])))

    page = write_report(str(results), str(tmp_path / "docs" / "report.md"))
    text = page.read_text()
    sections = text.split("\n## ")
    standard = next(s for s in sections if s.startswith("standard"))
    hierarchical = next(s for s in sections if s.startswith("nuts_hierarchical"))
    assert "entropy-mcmc bench --experiment standard --seed 0\n" in standard
    assert "entropy-mcmc bench --experiment nuts_hierarchical --seed 3 --draws 500\n" in hierarchical
    assert "| status | system | kernel | chains | max_rhat | min_ess_bulk | converged |" in standard
    assert "| status | case | system | max_rhat | min_ess_bulk |" in hierarchical
    lines = {line.split(" | ")[2]: line for line in standard.splitlines() if " ours " in line}
    assert "NOT CONVERGED" in lines["RWM"] and "R-hat 1.190" in lines["RWM"] and "NOT CONVERGED" not in lines["HMC"]
    assert "| Pyro | NUTS | 1 | - |" in standard and standard.count("NOT CONVERGED") == 1  # one chain: no R-hat
    assert "NOT CONVERGED** (ESS 57 < 400)" in hierarchical and hierarchical.count("NOT CONVERGED") == 1
    assert "Test CPU, 2 CPUs" in standard and "0123456789" in standard and "2026-12-04" in standard
    assert "![bench.png](report_figures/standard/bench.png)" in standard
    assert (tmp_path / "docs" / "report_figures" / "standard" / "bench.png").read_bytes() == b"\x89PNG fake"
    not_run = sections[-1]
    assert not_run.startswith("Not run yet") and "`entropy-mcmc bench --experiment demo`" in not_run
    assert "| standard |" not in not_run


def test_list_shows_every_experiment_with_its_expected_time(capsys):
    assert main(["bench", "--list"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for e in EXPERIMENTS.values():
        assert f"{e.name} {' '.join(e.expected.split())} " in out


def test_experiment_command_passes_the_shared_and_its_own_options():
    command, child, out = regenerate_command(EXPERIMENTS["standard"], ["--quick", "--targets", "german"])
    assert command == "entropy-mcmc bench --experiment standard --seed 0 --quick --targets german"
    assert child == ["-m", "entropy_mcmc.cli", "bench", "--suite", "standard", "--quick", "--seed", "0",
                     "--out", "results/standard", "--targets", "german"]
    with pytest.raises(ValueError, match="no --quick"):
        regenerate_command(EXPERIMENTS["demo"], ["--quick"])
    with pytest.raises(SystemExit):
        main(["bench", "--quick", "--experiment", "rbm_digits"])  # its options go after its name


def test_quick_experiment_runs_end_to_end_and_writes_its_result(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--experiment", "rbm_digits", "--quick", "--out", "out"]) == 0
    record = json.loads((tmp_path / "out" / "result.json").read_text())
    assert record["command"] == "entropy-mcmc bench --experiment rbm_digits --quick --out out"
    assert record["machine"]["torch_threads"] >= 1 and record["machine"]["cpus"] >= 1 and record["date"]
    assert record["commit"] and record["files"] == ["results.csv", "results.md"]
    (table,) = record["tables"]
    assert table["title"] == "results.csv" and len(table["rows"]) == 4  # 2 seeds x 2 models
    assert {row["model"] for row in table["rows"]} == {"scikit-learn BernoulliRBM", "entropy_mcmc BernoulliRBM"}
    assert main(["bench", "--report", "--results", str(tmp_path), "--out", "report.md"]) == 0
    assert "entropy-mcmc bench --experiment rbm_digits --quick --out out" in (tmp_path / "report.md").read_text()


def test_chain_scaling_counts_the_sampling_gradients_and_their_floor(tmp_path, monkeypatch):
    """The chain-scaling experiment end to end, small: ms per gradient is the sampling time over the gradients of
    the sampling phase (draws x HMC's 4 leapfrog steps, not warmup's), its ratio is to the floor measured beside it,
    and a missing or declined peer is a skipped column, not a failure."""
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--experiment", "chain_scaling", "--out", "cs", "--chains", "8", "16", "--warmup", "10",
                 "--draws", "7", "--no-blackjax"]) == 0
    (table,) = json.loads((tmp_path / "cs" / "result.json").read_text())["tables"]
    assert [row["chains"] for row in table["rows"]] == [8, 16]
    for row in table["rows"]:
        assert row["gradients"] == 7 * 4
        assert row["ms_per_gradient"] == pytest.approx(1e3 * row["sampling_s"] / 28)
        assert row["ratio_to_floor"] == pytest.approx(row["ms_per_gradient"] / row["floor_ms"])
        assert row["floor_ms"] > 0 and row["peak_rss_mb"] > 50 and "blackjax_wall_s" not in row


def test_transition_overhead_takes_the_model_out_of_a_transition(tmp_path, monkeypatch):
    """The overhead experiment end to end, small, with HEAD as the older revision: every call into the model counts
    once (HMC's 4 leapfrog steps: 3 gradients and one energy with gradient; a nested call counted again would give
    more), and the overhead is the transition's time less those calls."""
    from pathlib import Path

    db = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "posteriordb" / "posterior_database"
    if not db.is_dir():
        pytest.skip(f"no posterior database at {db} (shared data not present)")
    pytest.importorskip("posteriordb")
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--experiment", "transition_overhead", "--out", "ov", "HEAD", "--db", str(db),
                 "--posteriors", "kidiq-kidscore_momhsiq", "--repeats", "1", "--warmup", "5", "--draws", "10"]) == 0
    record = json.loads((tmp_path / "ov" / "overhead.json").read_text())
    for side in ("old", "new"):
        (run,) = record["runs"]["kidiq-kidscore_momhsiq"][side]
        assert run["gradients_per_transition"] == 4.0
        assert run["ms_overhead"] == pytest.approx(run["ms_transition"] - 4 * run["ms_gradient"])
        assert 0 < run["ms_gradient"] < run["ms_transition"]
    (table,) = json.loads((tmp_path / "ov" / "result.json").read_text())["tables"]
    old, new = table["rows"]
    assert new["code"] == "working tree" and old["overhead_old_over_new"] is None
    # a ratio of timings, which at 10 draws on a loaded machine can take any sign: checked as arithmetic only
    assert new["overhead_old_over_new"] == pytest.approx(old["ms_overhead_median"] / new["ms_overhead_median"])
