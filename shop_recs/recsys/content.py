"""Content-based recommender: TF-IDF over product text and attributes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from .base import Recommender, as_csr, knn_all_pairs, sparse_dense_rows, topk_rows

#: free-text fields are tokenised; attribute fields become one token each ("brand_acme_co")
TEXT_FIELDS = ("title", "description")
ATTRIBUTE_FIELDS = ("category", "brand", "tags")
_NON_WORD = re.compile(r"\W+")


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
        return self

    def user_profiles(self, user_items: sp.csr_matrix) -> sp.csr_matrix:
        """L2-normalised weighted sums of the TF-IDF rows of each user's items, keeping each
        profile's ``profile_terms`` heaviest terms (0 keeps all).

        Why trim: the light terms of a profile are the common words, whose posting lists are the
        longest, so they dominate scoring time while hardly moving the ranking."""
        profiles = sp.csr_matrix(as_csr(user_items) @ self.tfidf_)
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
