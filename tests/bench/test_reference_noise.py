"""bench/reference_noise.py: the standard errors of the calibration reference and of a request's gap to it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    sys.path.insert(0, str(ROOT / "bench"))  # the bench imports its _common helpers by name
    path = ROOT / "bench" / "reference_noise.py"
    spec = importlib.util.spec_from_file_location("bench_reference_noise", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_strata_group_rows_by_weight_and_drop_weightless_ones():
    bench = _bench()
    weights = {10: 0.25, 11: 0.25, 12: 0.125, 13: 0.125, 14: 0.125, 15: 0.125, 16: 0.0}
    assert bench._strata(weights) == [(0.5, [12, 13, 14, 15]), (0.5, [10, 11])]


def test_equal_weights_give_the_plain_standard_error_of_a_mean():
    bench = _bench()
    score = {0: 0.0, 1: 1.0, 2: 0.5, 3: 0.5}  # sample variance 1/6
    ref_se, gap_se = bench.standard_errors(score, [(1.0, [0, 1, 2, 3])], df_pairs=8)
    assert ref_se == pytest.approx((1 / 6 / 4) ** 0.5)
    assert gap_se == pytest.approx((1 / 6 / 4 + 1 / 6 / 8) ** 0.5)


def test_strata_add_their_variances_by_share_squared():
    bench = _bench()
    score = {0: 0.0, 1: 1.0, 2: 0.2, 3: 0.2, 4: 0.8}  # stratum A variance 1/2, B variance 0.12
    strata = [(0.25, [0, 1]), (0.75, [2, 3, 4])]
    ref_se, gap_se = bench.standard_errors(score, strata, df_pairs=100)
    ref_var = 0.25 ** 2 * 0.5 / 2 + 0.75 ** 2 * 0.12 / 3
    req_var = 0.25 ** 2 * 0.5 / 25 + 0.75 ** 2 * 0.12 / 75
    assert ref_se == pytest.approx(ref_var ** 0.5)
    assert gap_se == pytest.approx((ref_var + req_var) ** 0.5)


def test_a_malformed_request_spec_is_named():
    bench = _bench()
    with pytest.raises(SystemExit, match="'molecule:0.05' is not by:amount:seed"):
        bench._parse_request("molecule:0.05")
    assert bench._parse_request(" scaffold:0.05:302") == ("scaffold", 0.05, 302)
