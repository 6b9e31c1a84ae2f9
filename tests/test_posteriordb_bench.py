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
