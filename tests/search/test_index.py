"""The search index without a database: BM25 arithmetic, fields, typos, prefixes, folding, CJK."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shop_recs.search.index import SearchIndex, damerau_levenshtein, fold, stem, tokenize


def _index(titles_or_docs, **kwargs) -> SearchIndex:
    docs = [d if isinstance(d, dict) else {"title": d} for d in titles_or_docs]
    return SearchIndex(**kwargs).build(list(range(1, len(docs) + 1)), docs)


def test_bm25_matches_a_hand_computed_score():
    idx = _index(["red apple", "green apple apple", "red car"], k1=1.2, b=0.75, field_weights={"title": 1.0})
    result = idx.search("apple", prefix_last=False)
    n, df, avgdl, k1, b = 3, 2, 7 / 3, 1.2, 0.75
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))

    def bm25(tf: int, dl: int) -> float:  # the textbook formula
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

    scores = dict(zip(idx.doc_ids_[result.doc_indices].tolist(), result.scores.tolist(), strict=True))
    assert set(scores) == {1, 2}
    assert scores[1] == pytest.approx(bm25(1, 2))
    assert scores[2] == pytest.approx(bm25(2, 3))
    assert result.doc_indices.tolist() == [1, 0]  # two "apple"s beat one despite the longer title


def test_title_counts_more_than_description():
    idx = _index(
        [
            {"title": "reading lamp", "description": "warm light for the desk"},
            {"title": "desk organiser", "description": "keeps your reading lamp tidy"},
        ]
    )
    result = idx.search("lamp", prefix_last=False)
    assert idx.doc_ids_[result.doc_indices].tolist() == [1, 2]
    assert result.scores[0] > result.scores[1] > 0


def test_brand_and_category_are_searchable():
    idx = _index([{"title": "speaker", "brand": "Bose", "category": "Audio > Speakers"}, {"title": "mug"}])
    assert idx.doc_ids_[idx.search("bose", prefix_last=False).doc_indices].tolist() == [1]
    assert idx.doc_ids_[idx.search("audio", prefix_last=False).doc_indices].tolist() == [1]


def test_typo_is_corrected_to_the_closest_term_with_a_penalty():
    idx = _index(["wireless headphones", "headphone stand", "phone case"])
    exact = idx.search("headphones", prefix_last=False)
    typo = idx.search("hedphones", prefix_last=False)
    assert typo.corrected_query == "headphones"
    assert typo.doc_indices.tolist() == exact.doc_indices.tolist()
    assert np.all(typo.scores < exact.scores)  # the penalty
    assert [t.kind for t in typo.terms] == ["typo"]
    assert idx.search("headphones").corrected_query is None


def test_short_words_are_not_typo_corrected():
    idx = _index(["red cup", "blue mug"])
    assert idx.search("cap", prefix_last=False).total == 0


def test_prefix_of_the_last_word_matches():
    idx = _index(["wireless headphones", "head torch", "phone case"])
    result = idx.search("head")
    assert set(idx.doc_ids_[result.doc_indices].tolist()) == {1, 2}
    assert result.corrected_query is None
    # "head" is a whole word in doc 2, so it ranks first; the completion fills in after it.
    assert idx.doc_ids_[result.doc_indices[0]] == 2
    # only the last word is a prefix
    assert idx.search("head wireless", prefix_last=True).total == 2
    assert idx.search("headp").total == 1


def test_accents_and_width_are_folded():
    assert fold("Café CRÈME Ｍug") == "cafe creme mug"
    idx = _index(["Café crème mug", "tea pot"])
    assert idx.doc_ids_[idx.search("cafe creme", prefix_last=False).doc_indices].tolist() == [1]
    assert idx.doc_ids_[idx.search("CAFÉ", prefix_last=False).doc_indices].tolist() == [1]


def test_plural_stemming_lite():
    assert [stem(w) for w in ["headphones", "batteries", "glasses", "watches", "bus", "gas", "2021s"]] == [
        "headphone",
        "battery",
        "glass",
        "watch",
        "bus",
        "gas",
        "2021",
    ]
    idx = _index(["AA battery", "mug"])
    assert idx.search("batteries", prefix_last=False).total == 1


def test_cjk_bigrams_find_a_word_inside_a_longer_run():
    assert tokenize("无线耳机") == ["无线", "线耳", "耳机"]
    idx = _index(["无线耳机 蓝牙5.3", "机械键盘", "headphones 耳机"])
    result = idx.search("耳机", prefix_last=False)
    assert set(idx.doc_ids_[result.doc_indices].tolist()) == {1, 3}
    assert idx.search("键盘").total == 1
    assert tokenize("Sony耳机") == ["sony", "耳机"]  # mixed scripts split cleanly


def test_did_you_mean_excludes_the_term_itself():
    idx = _index(["phone case"] * 6 + ["phone cast"])
    hit = idx.closest_term("cast", exclude=idx.term_id("cast"))
    assert hit is not None and idx.vocab_[hit[0]] == "case" and hit[1] == 1


def test_mask_restricts_results():
    idx = _index(["red apple", "green apple"])
    result = idx.search("apple", mask=np.array([False, True]))
    assert idx.doc_ids_[result.doc_indices].tolist() == [2]


def test_score_equals_the_sparse_mat_vec_exactly():
    """``score`` reads the CSC arrays directly; it must add up exactly what the mat-vec did, so
    rankings and ties (broken on doc id) cannot move."""
    from shop_recs.search.index import QueryTerm

    rng = np.random.default_rng(0)
    words = [f"w{i:02d}" for i in range(40)]
    docs = [
        {"title": " ".join(rng.choice(words, 3)), "description": " ".join(rng.choice(words, 12))} for _ in range(300)
    ]
    idx = _index(docs)
    n_terms = len(idx.vocab_)
    for size in (1, 2, 5, 30):
        ids = rng.choice(n_terms, size, replace=False)
        weights = rng.uniform(0.2, 1.0, size)
        terms = [QueryTerm("x", int(t), float(w), "exact") for t, w in zip(ids, weights, strict=True)]
        expected = np.asarray(idx.weights_[:, ids] @ weights).ravel()
        assert np.array_equal(idx.score(terms), expected)
    # Unmatched and zero-weight terms contribute nothing.
    assert not idx.score([QueryTerm("x", -1, 0.0, "none"), QueryTerm("y", 0, 0.0, "exact")]).any()


def test_save_and_load_without_pickle(tmp_path):
    idx = _index([{"title": "wireless headphones", "brand": "Sony"}, {"title": "无线耳机"}, {"title": "café"}])
    path = tmp_path / "index.npz"
    idx.save(path)
    loaded = SearchIndex.load(path)
    for q in ("hedphones", "耳机", "cafe", "son"):
        a, b = idx.search(q), loaded.search(q)
        assert a.doc_indices.tolist() == b.doc_indices.tolist()
        np.testing.assert_allclose(a.scores, b.scores)
        assert a.corrected_query == b.corrected_query


def test_empty_index_and_empty_query():
    idx = _index([])
    assert idx.search("anything").total == 0
    idx = _index(["mug"])
    assert idx.search("!!!").total == 0


def test_damerau_levenshtein():
    assert damerau_levenshtein("hedphone", "headphone") == 1
    assert damerau_levenshtein("haedphone", "headphone") == 1  # transposition
    assert damerau_levenshtein("abc", "xyz", limit=1) == 2  # early exit returns limit + 1


def test_did_you_mean_suggests_a_far_more_common_close_word():
    from shop_recs.search.services import _did_you_mean

    idx = _index(["phone case"] * 6 + ["plaster cast"])
    assert _did_you_mean(idx, "cast", n_found=1) == "case"
    assert _did_you_mean(idx, "cast", n_found=5) is None  # enough results: no suggestion
    assert _did_you_mean(idx, "case", n_found=1) is None  # already the common word


def test_index_module_never_imports_django():
    import subprocess
    import sys

    code = "import sys, shop_recs.search.index; print(any(m.split('.')[0] == 'django' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
