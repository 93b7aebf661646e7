"""Content-based recommender: TF-IDF over product text and attributes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from .base import (
    Recommender,
    as_csr,
    knn_all_pairs,
    sparse_dense_rows,
    sparse_row_product,
    top_k_stable,
    topk_rows,
)

#: free-text fields are tokenised; attribute fields become one token each ("brand_acme_co")
TEXT_FIELDS = ("title", "description")
ATTRIBUTE_FIELDS = ("category", "brand", "tags")
_NON_WORD = re.compile(r"\W+")
#: a term found in at least this fraction of the items is scored from a dense row (see _common_terms)
COMMON_TERM_SHARE = 1 / 8


def item_document(item: Mapping[str, Any] | str) -> str:
    """One TF-IDF document for an item given as a string or a dict of catalogue fields.

    Category, brand and tags are turned into single prefixed tokens so that "Red Shoes" the
    category does not collide with the words "red" and "shoes" in a title.
    """
    if isinstance(item, str):
        return item
    parts = [str(item.get(f) or "") for f in TEXT_FIELDS]
    for field in ATTRIBUTE_FIELDS:
        value = item.get(field)
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        prefix = field.rstrip("s")
        parts.extend(f"{prefix}_{_NON_WORD.sub('_', str(v).strip().lower())}" for v in values if str(v).strip())
    return " ".join(parts)


class ContentBased(Recommender):
    """TF-IDF item profiles; a user profile is the interaction-weighted sum of the TF-IDF rows of
    the items in their history, and an item scores the cosine between the two. Items with no
    interactions are reachable (their score only depends on their text).

    ``fit(user_items, item_features=...)``: a list of documents (str or dict with title,
    description, category, brand, tags) or a precomputed (n_items x n_features) sparse matrix.
    Only the TF-IDF matrix and the top-``K`` item-item similarity are saved (the vectoriser is not).
    """

    name: ClassVar[str] = "content"
    _artifacts: ClassVar[tuple[str, ...]] = ("tfidf_", "similarity_", "n_items_")

    def __init__(
        self,
        K: int = 100,  # noqa: N803
        max_features: int = 50_000,
        min_df: int = 1,
        ngram_max: int = 1,
        sublinear_tf: bool = True,
        profile_terms: int = 64,
        num_threads: int = 0,
    ) -> None:
        self.K = K
        self.max_features = max_features
        self.min_df = min_df
        self.ngram_max = ngram_max
        self.sublinear_tf = sublinear_tf
        self.profile_terms = profile_terms
        self.num_threads = num_threads

    def fit(
        self, user_items: sp.csr_matrix | None, item_features: Sequence[Any] | sp.spmatrix | None = None, **kwargs: Any
    ) -> ContentBased:
        if item_features is None:
            raise ValueError("ContentBased.fit needs item_features (documents or a sparse feature matrix)")
        if sp.issparse(item_features):
            tfidf = sp.csr_matrix(item_features, dtype=np.float32)
        else:
            from sklearn.feature_extraction.text import TfidfVectorizer  # why: sklearn is slow to import

            docs = [item_document(doc) for doc in item_features]
            vectorizer = TfidfVectorizer(
                max_features=self.max_features,
                min_df=self.min_df,
                ngram_range=(1, int(self.ngram_max)),
                sublinear_tf=self.sublinear_tf,
                dtype=np.float32,
            )
            tfidf = vectorizer.fit_transform(docs)
        if user_items is not None and user_items.shape[1] != tfidf.shape[0]:
            raise ValueError(f"item_features has {tfidf.shape[0]} rows but user_items has {user_items.shape[1]} items")
        self.tfidf_ = as_csr(normalize(tfidf, norm="l2", axis=1))
        self.n_items_ = self.tfidf_.shape[0]
        # Item-item cosine = T T'; implicit's all_pairs_knn computes W'W, so hand it W = T'.
        self.similarity_ = knn_all_pairs(self.tfidf_.T.tocsr(), int(self.K), self.num_threads)
        self._after_load(None, "")
        return self

    def _after_load(self, data: Any, prefix: str) -> None:
        # Derived scoring caches (not saved): built here so the first request does not pay for them.
        self._tfidf_t = self.tfidf_.T.tocsr()
        self._common = None  # a refit of the same shape must not keep the previous catalogue's rows
        self._common_terms()

    def user_profiles(self, user_items: sp.csr_matrix) -> sp.csr_matrix:
        """L2-normalised weighted sums of the TF-IDF rows of each user's items, keeping each
        profile's ``profile_terms`` heaviest terms (0 keeps all).

        Why trim: the light terms of a profile are the common words, whose posting lists are the
        longest, so they dominate scoring time while hardly moving the ranking."""
        profiles = sp.csr_matrix(as_csr(user_items) @ self.tfidf_)
        profiles.sort_indices()  # terms tied at the trimming cut: the lower feature index is kept
        if self.profile_terms and profiles.nnz > int(self.profile_terms):
            profiles = topk_rows(profiles, int(self.profile_terms))
        # L2 row normalisation by hand: sklearn's normalize() validates its input on every call,
        # which cost more than the arithmetic on the one-user serving path.
        squares = profiles.copy()
        squares.data **= 2
        norms = np.sqrt(np.asarray(squares.sum(axis=1)).ravel())
        profiles.data /= np.repeat(np.where(norms > 0, norms, 1.0), np.diff(profiles.indptr)).astype(profiles.dtype)
        return profiles

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        # profiles (users x features) @ tfidf.T (features x items), with the transpose kept in CSR
        # form: scipy then walks only the posting lists of the profile's terms. Computing
        # ``tfidf @ profiles.T`` instead made scipy convert the whole matrix on every request
        # (12.5 ms per user on 20k items, against about 1 ms this way).
        return sparse_dense_rows(self.user_profiles(user_items) @ self._tfidf_by_term())

    def _score_one(self, user_id: int, items: np.ndarray, values: np.ndarray) -> np.ndarray:
        # score_users for one user on raw CSR arrays (profile = history rows of the TF-IDF, trimmed
        # to its heaviest terms, L2-normalised, then the trimmed terms' posting lists summed). Terms
        # tied at the trimming cut keep the lower feature index, as in user_profiles.
        tfidf = self.tfidf_
        profile = sparse_row_product(tfidf.indptr, tfidf.indices, tfidf.data, items, values, tfidf.shape[1])
        terms = np.flatnonzero(profile)
        weights = profile[terms].astype(np.float32)  # float32 like the batch path's scipy product
        keep = int(self.profile_terms)
        if keep and len(terms) > keep:
            chosen = np.sort(top_k_stable(weights, keep))
            terms, weights = terms[chosen], weights[chosen]
        norm = np.sqrt(np.sum(weights * weights, dtype=np.float32))
        if norm > 0:
            weights = weights / norm
        by_term = self._tfidf_by_term()
        dense_row, dense = self._common_terms()
        rows = dense_row[terms]
        common = rows >= 0
        scores = sparse_row_product(
            by_term.indptr, by_term.indices, by_term.data, terms[~common], weights[~common], tfidf.shape[0]
        )
        if common.any():
            scores += weights[common] @ dense[rows[common]]
        return scores.astype(np.float32)

    def _common_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense rows (float32, terms x items) of the terms found in at least 1/8 of the items, and
        each feature's row in them (-1 if none).

        Why: a profile's heaviest terms include the most common words, whose posting lists cover
        most of the catalogue (on the 20k-item benchmark 38 terms hold 208k of 690k entries and a
        profile touches ~195k entries). A dense row is one contiguous read per term, several times
        cheaper per item than a posting-list gather-and-scatter; below 1/8 the gather wins. The
        dense block is at most 4x the size of the sparse matrix's arrays (each row holds >= n/8 of
        the entries it replaces)."""
        by_term = self._tfidf_by_term()
        cached = getattr(self, "_common", None)
        if cached is None or cached[0].shape[0] != by_term.shape[0] or cached[1].shape[1] != by_term.shape[1]:
            df = np.diff(by_term.indptr)
            common = np.flatnonzero(df >= max(COMMON_TERM_SHARE * by_term.shape[1], 1))
            dense_row = np.full(by_term.shape[0], -1, dtype=np.int64)
            dense_row[common] = np.arange(len(common))
            cached = self._common = (dense_row, np.asarray(by_term[common].toarray(), dtype=np.float32))
        return cached

    def _tfidf_by_term(self) -> sp.csr_matrix:
        cached = getattr(self, "_tfidf_t", None)
        if cached is None or cached.shape[1] != self.tfidf_.shape[0]:
            cached = self._tfidf_t = self.tfidf_.T.tocsr()
        return cached

    def _similar_scores(self, item_ids: np.ndarray) -> np.ndarray:
        return sparse_dense_rows(self.similarity_[item_ids])

    def item_contributions(self, history: np.ndarray, item_id: int) -> np.ndarray:
        # The full cosine (not the top-K one), which is exactly what the profile score sums.
        return np.asarray((self.tfidf_[history] @ self.tfidf_[item_id].T).toarray()).ravel()
