"""Weighting, MMR re-ranking and explanations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from shop_recs.recsys.base import scale_values
from shop_recs.recsys.content import ContentBased
from shop_recs.recsys.ease import EASE
from shop_recs.recsys.explain import explain
from shop_recs.recsys.knn import ItemKNN
from shop_recs.recsys.mf import PureSVD
from shop_recs.recsys.rerank import mmr_rerank
from shop_recs.recsys.rp3beta import RP3beta
from shop_recs.recsys.weighting import build_interactions

DAY = 86_400.0


def test_event_weights_summed_and_decayed() -> None:
    m = build_interactions(
        user_idx=np.array([0, 0, 0, 1, 1]),
        item_idx=np.array([2, 2, 1, 0, 0]),
        event_type=np.array(["view", "purchase", "cart", "view", "bogus"]),
        timestamp=np.array([10 * DAY, 10 * DAY, 3 * DAY, 10 * DAY, 10 * DAY]),
        n_users=2,
        n_items=3,
        event_weights={"view": 1.0, "cart": 3.0, "purchase": 5.0},
        half_life_days=7.0,
    )
    assert m.shape == (2, 3) and m.dtype == np.float32
    assert m[0, 2] == pytest.approx(6.0)  # view + purchase, both "now": summed
    assert m[0, 1] == pytest.approx(3.0 * 0.5)  # cart one half-life old
    assert m[1, 0] == pytest.approx(1.0) and m.nnz == 3  # unknown type dropped


def test_confidence_transforms_and_value() -> None:
    args = (np.array([0, 0]), np.array([0, 1]), np.array(["purchase", "view"]))
    kw = {"event_weights": {"purchase": 2.0, "view": 1.0}, "value": np.array([3.0, 1.0])}
    linear = build_interactions(*args, confidence="linear", alpha=10.0, **kw)
    np.testing.assert_allclose(linear.toarray(), [[1 + 10 * 6.0, 1 + 10 * 1.0]])
    log = build_interactions(*args, confidence="log", alpha=2.0, epsilon=1.0, **kw)
    np.testing.assert_allclose(log.toarray(), [[1 + 2 * np.log1p(6.0), 1 + 2 * np.log1p(1.0)]], rtol=1e-6)
    with pytest.raises(ValueError, match="confidence"):
        build_interactions(*args, confidence="cubic")


def test_mmr_zero_keeps_order_one_diversifies() -> None:
    ids = np.array([10, 11, 12, 13])
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    sim = np.zeros((20, 20))
    sim[10, 11] = sim[11, 10] = 0.95  # 10 and 11 are near duplicates
    sim[10, 12] = sim[12, 10] = 0.9
    sim[11, 12] = sim[12, 11] = 0.9
    out, out_scores = mmr_rerank(ids, scores, sim, diversity=0.0)
    np.testing.assert_array_equal(out, ids)
    np.testing.assert_allclose(out_scores, scores, rtol=1e-6)
    out, _ = mmr_rerank(ids, scores, sim, diversity=1.0, N=2)
    np.testing.assert_array_equal(out, [10, 13])  # most relevant first, then the dissimilar one
    out, _ = mmr_rerank(ids, scores, sp.csr_matrix(sim), diversity=0.5, N=3)
    assert out[0] == 10 and 13 in out
    out, _ = mmr_rerank(np.array([3, -1]), np.array([1.0, -np.inf]), sim, diversity=0.5)
    np.testing.assert_array_equal(out, [3])


def _history_data() -> sp.csr_matrix:
    rng = np.random.default_rng(4)
    x = sp.random(80, 12, density=0.35, random_state=rng, format="csr", dtype=np.float32)
    x.data[:] = rng.integers(1, 4, x.nnz)
    return x


@pytest.mark.parametrize(
    "model",
    [ItemKNN(K=11, shrink=1.0), RP3beta(K=11), EASE(l2=5.0), ContentBased(K=5)],
    ids=lambda m: m.name,
)
def test_explanation_top_contributor(model) -> None:
    x = _history_data()
    docs = [f"word{i % 4} thing{i % 3} item{i}" for i in range(12)]
    model.fit(x, item_features=docs)
    user = 0
    row = x[[user]]
    rec = int(model.recommend(user, x, N=1)[0][0])
    parts = explain(model, row, rec, top=5)
    assert parts, "a recommendation with positive score should have contributors"
    scaled = scale_values(row, getattr(model, "input_scaling", "raw"))  # what the model scores with
    history, weights = scaled.indices, scaled.data
    sims = np.asarray(model.item_contributions(history, rec))
    best = history[np.argmax(weights * sims)]
    assert parts[0].item_id == best
    assert parts[0].contribution == pytest.approx(float(np.max(weights * sims)), rel=1e-5)
    assert 0 < parts[0].share <= 1 and [p.contribution for p in parts] == sorted(
        (p.contribution for p in parts), reverse=True
    )
    if model.name in {"item_knn", "rp3beta"}:
        # Non-negative similarities: the (positive) contributions add up to the item's score.
        score = model.score_users(np.array([user]), row)[0, rec]
        assert sum(p.contribution for p in explain(model, row, rec, top=100)) == pytest.approx(score, rel=1e-4)


def test_explanation_top_contributor_is_most_similar_item() -> None:
    # The user bought items 0 (weight 1) and 3 (weight 1); item 1 co-occurs with 0 only.
    x = sp.csr_matrix(
        np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 1], [0, 1, 1, 0]], dtype=np.float32)
    )
    model = ItemKNN(K=3, shrink=0).fit(x)
    user_row = sp.csr_matrix(np.array([[1, 0, 0, 1]], dtype=np.float32))
    parts = explain(model, user_row, 1)
    assert parts[0].item_id == 0


def test_binary_input_scaling_ignores_repeat_counts_and_rejects_unknown_modes() -> None:
    counts = sp.csr_matrix(np.array([[5, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float32))
    binary = EASE(l2=1.0).fit(counts)
    assert np.allclose(binary.B_, EASE(l2=1.0).fit((counts > 0).astype(np.float32)).B_)
    assert not np.allclose(binary.B_, EASE(l2=1.0, input_scaling="raw").fit(counts).B_)
    np.testing.assert_allclose(scale_values(counts, "log").data, np.log1p(counts.data))
    with pytest.raises(ValueError, match="input_scaling must be one of raw, binary, log; got 'sqrt'"):
        scale_values(counts, "sqrt")


def test_explain_rejects_factor_models() -> None:
    model = PureSVD(factors=2).fit(_history_data())
    with pytest.raises(TypeError):
        explain(model, _history_data()[[0]], 1)
