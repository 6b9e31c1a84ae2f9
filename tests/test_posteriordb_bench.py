"""`entropy-mcmc bench --suite posteriordb`: the table of ours and Pyro's NUTS against reference draws, and its
one-line usage errors."""
import json
from pathlib import Path

import pytest

from entropy_mcmc.cli import main

DB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "posteriordb" / "posterior_database"
needs_db = pytest.mark.skipif(not DB.is_dir(), reason=f"no posterior database at {DB} (shared data not present)")
pytestmark = pytest.mark.usefixtures("one_thread")


@needs_db
def test_the_suite_scores_ours_and_pyros_nuts_and_writes_the_table(tmp_path, capsys):
    pytest.importorskip("posteriordb")
    out = tmp_path / "bench"
    code = main(["bench", "--suite", "posteriordb", "--db", str(DB), "--posteriors", "kidiq-kidscore_momhsiq",
                 "--kernels", "nuts", "--sequential", "kidiq-kidscore_momhsiq", "--tiny", "--out", str(out)])
    assert code == 0
    record = json.loads((out / "posteriordb.json").read_text())
    rows = {r["sampler"]: r for r in record["rows"]}
    assert set(rows) == {"nuts", "nuts (sequential)", "pyro-nuts"}
    assert rows["nuts"]["chains_eval"] in ("plate", "vmap") and rows["nuts (sequential)"]["chains_eval"] == "sequential"
    for r in rows.values():
        assert r["min_ess"] > 0 and r["seconds"] > 0 and r["max_mean_error"] >= 0 and isinstance(r["passed"], bool)
    table = (out / "posteriordb.md").read_text()
    assert "kidiq-kidscore_momhsiq" in table and "pyro-nuts" in table
    assert "worst_sd_ratio" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--suite", "posteriordb"], "--suite posteriordb needs --db PATH"),
    (["--suite", "posteriordb", "--db", "/nonexistent/db"], "no posterior database at '/nonexistent/db'"),
    (["--db", "x"], "--db apply to --suite posteriordb"),
    (["--suite", "posteriordb", "--db", "x", "--targets", "german"], "--peers and --targets apply to the standard"),
    (["--posteriors", "eight-schools"], "unknown posterior 'eight-schools'"),
])
def test_bad_suite_arguments_are_one_line_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@needs_db
def test_a_run_stopped_midway_keeps_the_posteriors_it_finished(tmp_path, monkeypatch):
    pytest.importorskip("posteriordb")
    from entropy_mcmc.benchmarks.posteriordb import suite

    def fake_run(posterior, kernel, *args):
        if posterior.name == "arma-arma11":
            raise KeyboardInterrupt  # the user stops the run during the second posterior
        scores = dict.fromkeys(set(suite.COLUMNS) - {"posterior", "chains"}, 0.0)
        return {**scores, "sampler": kernel, "chains_eval": "plate", "passed": True}

    monkeypatch.setattr(suite, "_run_ours", fake_run)
    out = tmp_path / "bench"
    with pytest.raises(KeyboardInterrupt):
        suite.run_suite(DB, ["kidiq-kidscore_momhsiq", "arma-arma11"], kernels=["nuts"], pyro_nuts=False,
                        mode="tiny", out_dir=str(out))
    record = json.loads((out / "posteriordb.json").read_text())
    assert [(r["posterior"], r["sampler"]) for r in record["rows"]] == [("kidiq-kidscore_momhsiq", "nuts")]
    assert record["posteriors"] == ["kidiq-kidscore_momhsiq", "arma-arma11"]
    assert "kidiq-kidscore_momhsiq" in (out / "posteriordb.csv").read_text()
