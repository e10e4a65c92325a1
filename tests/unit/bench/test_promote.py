"""The promote bench's figures: steady searches beside those around the promotion."""

from __future__ import annotations

from streamer.bench.promote import CANDIDATE, Sample, promote_figures

OLD = "minilm-l6@1"


def steady_then(window: list[Sample]) -> list[Sample]:
    steady = [Sample(i * 0.05, 0.010 + (i % 10) * 0.001, OLD) for i in range(200)]  # 10-19 ms
    return steady + window


def test_a_warm_promotion_meets_the_goal() -> None:
    window = [Sample(10.0 + i * 0.05, 0.012, OLD if i < 5 else CANDIDATE) for i in range(100)]
    late = [Sample(30.0, 0.5, CANDIDATE)]  # after the window: not counted in it
    f = promote_figures(steady_then(window + late), promote_started_s=10.0, promote_done_s=10.2)
    assert f["steady_requests"] == 200
    assert f["steady_p99_ms"] == 19.0
    assert f["window_requests"] == 100
    assert f["window_p99_ms"] == 12.0
    assert f["window_from_candidate"] == 95
    assert f["first_candidate_answer_ms"] == 12.0
    assert f["window_p99_over_steady_p99"] == round(12.0 / 19.0, 2)
    assert f["goal_met"]


def test_a_cold_candidate_misses_the_goal_and_a_timeout_counts() -> None:
    cold = [Sample(10.3 + i * 0.05, 10.0 - i * 0.05, CANDIDATE) for i in range(5)]  # behind a load
    warm = [Sample(11.0 + i * 0.05, 0.012, CANDIDATE) for i in range(100)]
    lost = [Sample(12.0, 60.0, error="no answer")]
    f = promote_figures(
        steady_then(cold + warm + lost), promote_started_s=10.0, promote_done_s=10.2
    )
    assert f["window_max_ms"] == 60000.0
    assert f["window_errors"] == 1
    assert f["first_candidate_answer_ms"] == 10000.0
    assert f["window_p99_over_steady_p99"] > 2
    assert not f["goal_met"]


def test_no_answer_from_the_candidate_is_no_goal_met() -> None:
    window = [Sample(10.0 + i * 0.05, 0.012, OLD) for i in range(50)]
    f = promote_figures(steady_then(window), promote_started_s=10.0, promote_done_s=10.2)
    assert f["window_from_candidate"] == 0
    assert f["first_candidate_answer_ms"] is None
    assert not f["goal_met"]
