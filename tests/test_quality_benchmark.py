"""benchmarks/quality.py's verdicts: "at least as good as CMA-ES" is judged on the env's score,
case by case, not on the compliance ratio, which ignores the rules SIMP does not know."""

import numpy as np
import pytest
from conftest import benchmark_module


@pytest.fixture(scope="module")
def quality():
    return benchmark_module("quality")


def rows(method, budget, scores, ratio, overhang=0.0):
    return [{"env": "e", "case": case, "method": method, "budget": budget,
             "seconds": 0.01 if method == "policy" else 2.0, "evaluations": 1, "feasible": overhang == 0,
             "volume_off": 0.0, "score": score, "ratio": ratio,
             "violations": {"floating_material": 0.0, "load_path": 0.0, "overhang": overhang, "member_size": 0.0}}
            for case, score in enumerate(scores)]


@pytest.mark.parametrize(
    "search_scores, share, verdict",
    [([0.5, 2.0, 0.5, 2.0], 0.5, "MET"),  # level: as good in half the cases
     ([2.0, 2.0, 2.0, 0.5], 0.25, "NOT MET")],  # the search's score better; the policy's are only stiffer
)
def test_the_policy_is_compared_with_the_search_on_the_score_case_by_case(quality, search_scores, share, verdict,
                                                                            capsys):
    data = (rows("policy", None, [1.0] * 4, ratio=1.01, overhang=0.2) + rows("simp", None, [1.5] * 4, ratio=1.0)
            + rows("cmaes", 100, search_scores, ratio=1.08, overhang=0.1))
    summary = quality.summarise(data)
    line = {s["method"]: s for s in summary}
    assert line["cmaes"]["policy_at_least_as_good"] == share and line["policy"]["policy_at_least_as_good"] == 1.0
    assert line["simp"]["policy_at_least_as_good"] == 0.0
    assert line["cmaes"]["score_median"] == pytest.approx(float(np.median(search_scores)))
    (cma,) = [t for t in quality.targets(summary, "e") if "CMA-ES with 100" in t]
    assert cma.startswith(f"policy in 1 evaluation at least as good as CMA-ES with 100: {verdict} ")
    assert f"in {share:.0%} of the cases" in cma and "median compliance ratio 1.010 against 1.080" in cma
    quality.print_table(summary)
    header = capsys.readouterr().out.splitlines()[2]
    assert "score med" in header and "policy >=" in header and "overhang" in header
