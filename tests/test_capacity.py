"""bench/capacity.py: the capacity table is computed from the measured runs it is given."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.capacity import load_runs, table  # noqa: E402


def run(points: int, search_ms: float, rss_mib: float, disk_mib: float, engine: str = "edge") -> dict:
    lvl = {"1": {"p50_ms": search_ms}}
    return {"engine": engine, "points": points, "upsert_s": 1.0, "optimize_s": 0.5, "rss_index_mib": rss_mib,
            "disk_mib": disk_mib, "search": lvl, "retrieve": {"1": {"p50_ms": search_ms + 7.0}}}


def test_points_per_gb_and_log_fit_come_from_the_runs(tmp_path) -> None:
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps({"runs": [run(1_000, 2.0, 10, 5), run(10_000, 3.0, 40, 30),
                                      run(10_000, 9.9, 1, 1, engine="llamaindex")]}))
    b.write_text(json.dumps({"runs": [run(100_000, 4.0, 2048 * 100_000 / 2**20, 1024 * 100_000 / 2**20)]}))
    runs = load_runs([a, b], "edge")
    assert [r["points"] for r in runs] == [1_000, 10_000, 100_000]
    t = table(runs)
    assert t["points_per_gb_ram"] == pytest.approx(2**30 / 2048)  # the largest run's bytes per point
    assert t["points_per_gb_disk"] == pytest.approx(2**30 / 1024)
    assert t["fit"]["b_ms_per_decade"] == pytest.approx(1.0)  # 2, 3, 4 ms at 10^3, 10^4, 10^5 points
    assert t["expected"][1_000_000]["search_p50_ms"] == pytest.approx(5.0)
    assert t["expected"][10_000_000]["retrieve_p50_ms"] == pytest.approx(13.0)
    assert t["expected"][10_000_000]["ram_gb"] == pytest.approx(10_000_000 * 2048 / 2**30)
    assert math.isclose(t["nonsearch_ms"], 7.0)


def test_no_runs_of_the_engine_is_an_error(tmp_path) -> None:
    f = tmp_path / "a.json"
    f.write_text(json.dumps({"runs": [run(1_000, 2.0, 10, 5, engine="llamaindex")]}))
    with pytest.raises(ValueError, match="no runs"):
        table(load_runs([f], "edge"))
