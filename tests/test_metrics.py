"""Metric definitions (jepa_pipe.eval.metrics) on hand-computed cases.

Retrieval follows CLIP4Clip's R@K / MdR / MnR with 1-based ranks, except that ties count
against the query (a correct item's rank = how many items score >= it), so a collapsed model
that scores everything equally gets R@1 = 0; with several correct items the best one counts.
"""

from __future__ import annotations

import numpy as np
import pytest

from jepa_pipe.eval.metrics import (
    moment_metrics,
    proportion_interval,
    query_ranks,
    retrieval_metrics,
    temporal_iou,
    topk_accuracy,
)


def test_diagonal_ranks_by_hand():
    sim = np.array(
        [
            [0.9, 0.1, 0.2],  # correct 0.9 is highest: rank 1
            [0.3, 0.8, 0.1],  # rank 1
            [0.5, 0.6, 0.4],  # 0.5, 0.6, 0.4 all >= 0.4: rank 3
        ]
    )
    assert query_ranks(sim).tolist() == [1, 1, 3]
    m = retrieval_metrics(sim)
    assert set(m) == {"R1", "R5", "R10", "MdR", "MnR"}
    assert m["R1"] == pytest.approx(200 / 3)
    assert m["R5"] == m["R10"] == 100.0
    assert m["MdR"] == 1.0
    assert m["MnR"] == pytest.approx(5 / 3)


def test_ties_count_against_the_query():
    collapsed = np.zeros((4, 4))
    m = retrieval_metrics(collapsed)
    assert m["R1"] == 0.0  # not 100: every item ties with the correct one
    assert m["MdR"] == m["MnR"] == 4.0
    assert m["R5"] == 100.0  # 4 items, so rank 4 <= 5
    sim = np.array([[0.5, 0.5, 0.1], [0.2, 0.7, 0.7], [0.0, 0.0, 0.3]])
    assert query_ranks(sim).tolist() == [2, 2, 1]


def test_r_at_k_boundaries_and_median_of_even_count():
    # 12 items; the correct item (diagonal) is preceded by i items for query i.
    n = 12
    sim = np.zeros((n, n))
    for q in range(n):
        order = [x for x in range(n) if x != q]
        for rank, item in enumerate([*order[:q], q, *order[q:]]):
            sim[q, item] = n - rank
    assert query_ranks(sim).tolist() == list(range(1, n + 1))
    m = retrieval_metrics(sim)
    assert m["R1"] == pytest.approx(100 / 12)
    assert m["R5"] == pytest.approx(500 / 12)
    assert m["R10"] == pytest.approx(1000 / 12)
    assert m["MdR"] == 6.5  # median of 1..12
    assert m["MnR"] == 6.5


def test_several_correct_items_take_the_best_ranked():
    sim = np.array(
        [
            [0.1, 0.9, 0.5, 0.3],  # correct {2, 3}: item 2 has rank 2, item 3 rank 3 -> 2
            [0.8, 0.2, 0.1, 0.0],  # correct {0}: rank 1
            [0.4, 0.3, 0.2, 0.1],  # correct {3, 1}: item 1 rank 2 -> 2
        ]
    )
    q2i = [[2, 3], 0, (3, 1)]
    assert query_ranks(sim, q2i).tolist() == [2, 1, 2]
    m = retrieval_metrics(sim, q2i)
    assert m["R1"] == pytest.approx(100 / 3)
    assert m["MdR"] == 2.0
    assert m["MnR"] == pytest.approx(5 / 3)


def test_video_to_text_with_several_captions_per_video():
    # 2 videos, 5 captions; captions 0-2 describe video 0, captions 3-4 video 1.
    text_to_video = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.1, 0.9], [0.6, 0.4]])
    caption_video = [0, 0, 0, 1, 1]
    t2v = query_ranks(text_to_video, caption_video)
    assert t2v.tolist() == [1, 2, 1, 1, 2]
    captions_of = [[i for i, v in enumerate(caption_video) if v == k] for k in range(2)]
    v2t = query_ranks(text_to_video.T, captions_of)
    # video 0 scores captions 0.9 0.2 0.7 0.1 0.6: best correct (0.9) is first -> 1
    # video 1 scores 0.1 0.8 0.3 0.9 0.4: best correct (caption 3, 0.9) -> 1
    assert v2t.tolist() == [1, 1]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.array([[np.nan, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"query 1.*item 5.*2 items"):
        retrieval_metrics(np.eye(2), [0, 5])
    with pytest.raises(ValueError, match="query 0 has no correct item"):
        retrieval_metrics(np.eye(2), [[], 1])
    with pytest.raises(ValueError, match="3 queries"):
        retrieval_metrics(np.eye(3), [0, 1])
    with pytest.raises(ValueError, match="diagonal"):
        retrieval_metrics(np.ones((3, 2)))
    with pytest.raises(ValueError, match="2-D"):
        retrieval_metrics(np.ones(3))


def test_topk_accuracy_by_hand_with_ties_against():
    scores = np.array(
        [
            [0.1, 0.7, 0.2],  # label 1: rank 1
            [0.5, 0.3, 0.2],  # label 2: rank 3
            [0.4, 0.4, 0.2],  # label 0: tie with class 1 -> rank 2
            [0.2, 0.3, 0.5],  # label 1: rank 2
        ]
    )
    labels = np.array([1, 2, 0, 1])
    acc = topk_accuracy(scores, labels, ks=(1, 2, 5))
    assert acc == {"top1": 25.0, "top2": 75.0, "top5": 100.0}


# ------------------------------------------------------------------ moment retrieval (Charades-STA)
def test_proportion_interval_by_hand():
    # Wilson: centre (p + z^2/2n) / (1 + z^2/n), half z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)
    lo, hi = proportion_interval(6, 24)  # p = 0.25: centre 0.28450, half 0.16450
    assert lo == pytest.approx(11.999, abs=0.01) and hi == pytest.approx(44.900, abs=0.01)
    assert proportion_interval(0, 10)[0] == 0.0 and proportion_interval(10, 10)[1] == 100.0
    assert proportion_interval(0, 10)[1] == pytest.approx(27.75, abs=0.01)  # z^2/(n + z^2)
    with pytest.raises(ValueError, match="7 successes of 5"):
        proportion_interval(7, 5)


def test_temporal_iou_by_hand():
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert temporal_iou((2, 4), (0, 10)) == pytest.approx(0.2)
    assert temporal_iou((0, 5), (5, 10)) == 0.0  # touching, no overlap
    assert temporal_iou((0, 1), (3, 4)) == 0.0
    assert temporal_iou((3, 7), (3, 7)) == 1.0


def test_moment_metrics_by_hand():
    gt = [(0.0, 10.0), (20.0, 30.0), (5.0, 9.0)]
    preds = [
        [(0.0, 10.0), (50, 60)],  # top-1 IoU 1.0
        [(25.0, 35.0), (20.0, 30.0)],  # top-1 IoU 5/15; exact match at rank 2
        [(0.0, 4.0)] * 5 + [(5.0, 9.0)],  # nothing in the top 5 overlaps; exact at rank 6
    ]
    m = moment_metrics(preds, gt)
    assert set(m) == {"R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU"}
    assert m["R1@0.3"] == pytest.approx(200 / 3)  # IoU 1.0 and 0.333 >= 0.3
    assert m["R1@0.5"] == m["R1@0.7"] == pytest.approx(100 / 3)
    assert m["R5@0.3"] == m["R5@0.5"] == m["R5@0.7"] == pytest.approx(200 / 3)
    assert m["mIoU"] == pytest.approx(100 * (1.0 + 1 / 3 + 0.0) / 3)


def test_moment_threshold_is_inclusive_and_empty_predictions_miss():
    gt = [(0.0, 10.0), (0.0, 10.0)]
    m = moment_metrics([[(0.0, 5.0)], []], gt)  # IoU exactly 0.5; no prediction at all
    assert m["R1@0.5"] == 50.0 and m["R1@0.7"] == 0.0
    assert m["mIoU"] == pytest.approx(25.0)


def test_moment_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"2 queries.*1 ground"):
        moment_metrics([[(0, 1)], [(0, 1)]], [(0, 1)])
    with pytest.raises(ValueError, match="ground truth of query 0"):
        moment_metrics([[(0, 1)]], [(3, 3)])
    with pytest.raises(ValueError, match="query 1, prediction 0"):
        moment_metrics([[(0, 1)], [(5, 2)]], [(0, 1), (0, 1)])


def test_candidate_windows_hand_case():
    from jepa_pipe.eval.moments import candidate_windows

    got = candidate_windows(5.0, lengths_s=(2.0, 4.0), stride_s=1.0).tolist()
    assert got == [[0, 2], [1, 3], [2, 4], [3, 5], [0, 4], [1, 5]]
    # a 16 s window does not fit a 10 s video; a video shorter than every length: itself
    assert all(e - s < 16 for s, e in candidate_windows(10.0))
    assert candidate_windows(1.5).tolist() == [[0.0, 1.5]]
    with pytest.raises(ValueError, match="must be > 0"):
        candidate_windows(10.0, stride_s=0)


def test_temporal_nms_hand_case():
    from jepa_pipe.eval.moments import temporal_nms

    windows = np.array([[0, 4], [1, 5], [8, 12], [0, 2], [9, 12]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95])
    # [9,12] first; [8,12] overlaps it at IoU 0.75 -> dropped; [0,4] kept; [1,5] IoU 0.6 with
    # [0,4] -> dropped; [0,2] IoU 0.5 with [0,4] -> dropped (>= 0.5)
    assert temporal_nms(windows, scores, iou=0.5, top_k=5) == [(9, 12), (0, 4)]
    assert temporal_nms(windows, scores, iou=0.5, top_k=1) == [(9, 12)]
    assert temporal_nms(windows, scores, iou=1.01, top_k=3) == [(9, 12), (0, 4), (1, 5)]


def test_random_window_baseline_is_seeded_and_scored_like_the_model():
    from jepa_pipe.eval.metrics import moment_metrics
    from jepa_pipe.eval.moments import candidate_windows, random_window_moments

    windows = candidate_windows(32.0)
    a, b = random_window_moments(windows, seed=3), random_window_moments(windows, seed=3)
    assert a == b and len(a) == 5 and a != random_window_moments(windows, seed=4)
    # every kept pair overlaps less than the NMS threshold
    from jepa_pipe.eval.metrics import temporal_iou

    assert all(temporal_iou(x, y) < 0.5 for i, x in enumerate(a) for y in a[i + 1 :])
    # a ground truth equal to a window the baseline ranked first is found at R1@0.7
    assert moment_metrics([a], [a[0]])["R1@0.7"] == 100.0


def test_random_window_baseline_is_the_mean_over_draws():
    from jepa_pipe.eval.moments import (
        candidate_windows,
        random_window_baseline,
        random_window_moments,
        scored_moments,
    )

    # two disjoint candidates per query, the ground truth one of them: a random top-1 finds
    # it half the time, the top-5 always
    windows = [candidate_windows(8.0, (4.0,), 4.0)] * 2
    assert windows[0].tolist() == [[0.0, 4.0], [4.0, 8.0]]
    truth = [(0.0, 4.0), (4.0, 8.0)]
    mean, spread = random_window_baseline(windows, truth, seed=0, draws=400)
    assert 43 < mean["R1@0.5"] < 57 and mean["R5@0.5"] == 100.0
    assert spread["R1@0.5"] == [0.0, 100.0] and spread["R5@0.5"] == [100.0, 100.0]
    # one draw is the single seeded ranking, scored as the model is
    one, _ = random_window_baseline(windows, truth, seed=7, draws=1)
    drawn = [random_window_moments(w, (7, 0, q)) for q, w in enumerate(windows)]
    assert one == scored_moments(drawn, truth)
    with pytest.raises(ValueError, match="draws"):
        random_window_baseline(windows, truth, seed=0, draws=0)
