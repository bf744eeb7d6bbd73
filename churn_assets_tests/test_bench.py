"""``python -m benchmarks.bench`` at a small size: both modes run end to end and agree (no timing asserted)."""

from __future__ import annotations

import duckdb
import pytest

from benchmarks.bench import MODES, customers_for, main, run_bench

TABLES = (
    "silver.transactions", "silver.quarantine", "silver.customer_features", "silver.churn_labels",
    "ml.churn_predictions", "gold.customer_value", "gold.retention_actions", "silver.campaign_contacts",
    "gold.campaign_outcomes",
)


def test_bench_runs_both_modes_and_they_build_the_same_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_MODEL_CANDIDATES", "logistic_regression")  # both modes alike; training kept short
    lines: list[str] = []
    results = run_bench(6000, MODES, tmp_path, keep=True, seed=7, echo=lines.append)
    by_mode = {r.mode: r for r in results}
    assert set(by_mode) == set(MODES)
    for result in results:
        steps = {s.step: s for s in result.steps}
        for step in ("bronze.transactions", "silver.transactions", "silver.customer_features", "silver.churn_labels",
                     "ml.churn_model", "ml.churn_predictions", "gold.customer_value", "gold.retention_actions"):
            assert step in steps and steps[step].seconds > 0, (result.mode, step)
        assert result.peak_rss_mb > 100 and result.snapshot == results[0].snapshot
    assert {s.step: s.rows for s in by_mode["orchestrated"].steps}["silver.transactions"] == \
        {s.step: s.rows for s in by_mode["plain"].steps}["silver.transactions"]
    report = "\n".join(lines)
    assert "orchestrated / plain:" in report and "s per million" in report
    counts = {}
    for mode in MODES:
        with duckdb.connect(str(tmp_path / mode / "warehouse.duckdb"), read_only=True) as connection:
            counts[mode] = {t: connection.execute(f"select count(*) from {t}").fetchall()[0][0] for t in TABLES}
    assert counts["orchestrated"] == counts["plain"] and counts["plain"]["silver.customer_features"] > 0


def test_tables_only_stops_after_the_tables_computed_inside_duckdb(tmp_path):
    results = run_bench(6000, MODES, tmp_path, keep=True, seed=7, echo=lambda _: None, tables_only=True)
    for result in results:
        steps = {s.step for s in result.steps}
        assert {"bronze.transactions", "silver.transactions", "silver.customer_features", "silver.churn_labels"} <= steps
        assert not {"ml.churn_model", "ml.churn_predictions", "gold.retention_actions"} & steps, result.mode
        with duckdb.connect(str(tmp_path / result.mode / "warehouse.duckdb"), read_only=True) as connection:
            schemas = {r[0] for r in connection.execute("select distinct schema_name from duckdb_tables()").fetchall()}
            assert "silver" in schemas and "gold" not in schemas and "ml" not in schemas


def test_bench_sizes_the_sample_by_transactions_and_refuses_nonsense(capsys):
    assert customers_for(1_000_000) == 85_987
    assert customers_for(10) == 200
    with pytest.raises(SystemExit) as refused:
        main(["--transactions", "0"])
    assert refused.value.code == 2
    assert "must be a positive whole number" in capsys.readouterr().err


def test_the_benchmark_refuses_a_workdir_that_is_a_file(tmp_path, capsys):
    workdir = tmp_path / "results.txt"
    workdir.write_text("not a folder")
    assert main(["--workdir", str(workdir)]) == 2
    assert capsys.readouterr().err == f"bench: --workdir {workdir} is a file, not a folder\n"


def test_a_workdir_reuses_its_generated_sample_only_for_the_same_size_and_seed(tmp_path):
    from benchmarks.bench import _generate, _reuse_sample
    from churn_assets.core.sample.generate import SampleConfig

    config = SampleConfig(customers=200, seed=3)
    lines: list[str] = []
    assert _reuse_sample(tmp_path, config, lines.append) is None  # nothing generated yet
    generated = _generate(tmp_path, config, lines.append)
    assert generated > 0 and any((tmp_path / "landing").rglob("*.csv"))
    assert _reuse_sample(tmp_path, config, lines.append) == generated
    assert "Reusing" in lines[-1]
    assert _reuse_sample(tmp_path, SampleConfig(customers=200, seed=4), lines.append) is None
    assert _reuse_sample(tmp_path, SampleConfig(customers=300, seed=3), lines.append) is None
