"""Mean ± spread of the headline gaps over requests, on hand-made entries with exact values."""

import pytest

from graphdel.evaluation.spread import spread_blocks, spread_of, spread_rows


def entry(role: str, df: float, test: float, auc: float | None, attack: float, wall: float) -> dict:
    e = {"role": role, "splits": {"forget": {"pool64": {"g2t_mrr": df}}, "test": {"pool64": {"g2t_mrr": test}}},
         "membership": {"attack_auc": attack}, "wall_time_s": wall}
    if auc is not None:
        e["distinguishability"] = {"mean": auc}
    return e


def request(seed: int, md: tuple, rt: tuple, orig: tuple) -> dict:
    return {"seed": seed, "pairs": 10 + seed, "models": {
        "original": entry("original", *orig), "retrain": entry("reference", *rt), "multidelete": entry("method", *md)}}


ORIGINAL = (0.9, 0.63, 0.9, 0.8, 300.0)
REQUESTS = [
    request(0, md=(0.80, 0.60, 0.70, 0.66, 10.0), rt=(0.75, 0.62, 0.62, 0.60, 200.0), orig=ORIGINAL),
    request(1, md=(0.70, 0.61, 0.60, 0.64, 30.0), rt=(0.74, 0.62, 0.66, 0.62, 300.0), orig=ORIGINAL),
]


def test_each_gap_is_against_its_own_requests_reference():
    s = spread_of(REQUESTS)
    md = s["methods"]["multidelete"]
    assert s["requests"] == [{"seed": 0, "pairs": 10}, {"seed": 1, "pairs": 11}]
    assert md["forget_mrr"]["values"] == pytest.approx([0.05, -0.04])
    assert md["forget_mrr"]["mean"] == pytest.approx(0.005)
    assert md["forget_mrr"]["std"] == pytest.approx(0.0636396, abs=1e-6)  # sample std of 0.05 and -0.04
    assert md["test_mrr"]["values"] == pytest.approx([-0.03, -0.02])  # against the original, not Retrain
    assert md["df_dr_auc"]["values"] == pytest.approx([0.08, -0.06])
    assert md["attack_auc"]["values"] == pytest.approx([0.06, 0.02])
    assert md["time_share"]["values"] == pytest.approx([0.05, 0.10])
    assert set(s["methods"]) == {"multidelete"}  # the original and Retrain are the references, not rows


def test_one_request_has_no_spread_and_a_missing_number_no_mean():
    one = spread_of(REQUESTS[:1])["methods"]["multidelete"]
    assert one["forget_mrr"]["std"] is None and one["forget_mrr"]["mean"] == pytest.approx(0.05)
    missing = [REQUESTS[0], request(1, md=(0.7, 0.61, None, 0.64, 30.0), rt=(0.74, 0.62, 0.66, 0.62, 300.0),
                                    orig=ORIGINAL)]
    auc = spread_of(missing)["methods"]["multidelete"]["df_dr_auc"]
    assert auc["mean"] is None and auc["values"][1] is None
    with pytest.raises(ValueError, match="at least one request"):
        spread_of([])


def test_the_table_and_the_report_section():
    s = spread_of(REQUESTS)
    header, rows = spread_rows(s)
    assert header[0] == "method" and len(header) == 6
    assert rows == [["multidelete", "+0.005 ± 0.064", "-0.025 ± 0.007", "+0.010 ± 0.099", "+0.040 ± 0.028",
                     "0.075 ± 0.035"]]
    blocks = spread_blocks(s)
    assert blocks[0] == ("h2", "Spread over 2 requests") and blocks[2] == ("table", header, rows)
    assert "seed 0 (10 pairs), seed 1 (11 pairs)" in blocks[1][1]
    assert spread_blocks(None) == []


def test_the_terminal_table_aligns_the_rows_and_is_empty_without_a_spread():
    from graphdel.evaluation.suite_output import spread_table

    text = spread_table({"results": {"spread": spread_of(REQUESTS)}})
    lines = text.splitlines()
    assert lines[0] == "mean ± standard deviation over 2 requests (seeds 0, 1):"
    assert lines[2].split("  ")[0] == "multidelete" and "+0.005 ± 0.064" in lines[2]
    assert lines[1].index("Df MRR − Retrain") == lines[2].index("+0.005 ± 0.064")  # columns aligned
    assert spread_table({"results": {}}) == ""
