"""A per-store full-text index: BM25F over title, brand, category path and description.

Pure numpy/scipy (no Django import, like the engine), so it is unit-tested without a database and
can be saved to an ``.npz`` and loaded with ``allow_pickle=False``.

How a query is answered:

1. **Tokenise** (:func:`tokenize`): NFKC (full-width -> ASCII), case folding, accent folding
   (``café`` -> ``cafe``), Latin/digit words with a light plural stemmer (``headphones`` ->
   ``headphone``), and CJK runs as overlapping character **bigrams** (``无线耳机`` -> 无线, 线耳,
   耳机): Chinese has no spaces, and bigrams are the standard dictionary-free way to index it
   (Lucene's CJKAnalyzer does the same).
2. **Resolve terms**: a known term is used as is. An unknown Latin term is mapped to the closest
   vocabulary term through a trigram -> terms sparse matrix (candidates share trigrams; the best is
   confirmed by Damerau-Levenshtein distance <= 1 for 4-7 letters, <= 2 for longer words) and
   weighted down by ``typo_penalty ** distance``. The **last** term may also be a prefix
   (search-as-you-type): its completions come from a binary search over the sorted vocabulary.
3. **Score**: BM25F. Each field's term frequency is length-normalised with its own ``b``-style
   factor and weighted (title counts most), the weighted sum saturates once with ``k1``, and
   the result is multiplied by Lucene's always-positive idf. The per-(doc, term) weights are
   precomputed into one CSC matrix, so a query is a column slice and a mat-vec.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

FIELDS: tuple[str, ...] = ("title", "brand", "category", "description")
DEFAULT_FIELD_WEIGHTS: dict[str, float] = {"title": 3.0, "brand": 2.0, "category": 1.5, "description": 1.0}

_CJK_RANGES = (
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
)
_TOKEN_RE = re.compile(rf"[0-9a-z]+|[{_CJK_RANGES}]+")
_CJK_RE = re.compile(rf"[{_CJK_RANGES}]")


def fold(text: str) -> str:
    """NFKC, case folding and accent stripping (``Ｃafé`` -> ``cafe``); CJK characters are kept."""
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped)


def stem(word: str) -> str:
    """Plural stripping only ("stemming-lite"): precise enough for product titles, never mangles brands."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"  # batteries -> battery
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]  # glasses -> glass, watches -> watch, boxes -> box
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]  # headphones -> headphone
    return word


def is_cjk(token: str) -> bool:
    return bool(_CJK_RE.match(token))


def _raw_words(text: str) -> list[str]:
    return _TOKEN_RE.findall(fold(text))


def tokenize_with_surface(text: str) -> list[tuple[str, str]]:
    """``(term, surface)`` pairs: the indexed term and the folded word it came from."""
    out: list[tuple[str, str]] = []
    for word in _raw_words(text):
        if is_cjk(word):
            if len(word) == 1:
                out.append((word, word))
            else:
                out.extend((word[i : i + 2], word[i : i + 2]) for i in range(len(word) - 1))
        else:
            out.append((stem(word), word))
    return out


def tokenize(text: str) -> list[str]:
    """The index terms of ``text`` (see the module docstring)."""
    return [term for term, _ in tokenize_with_surface(text)]


def damerau_levenshtein(a: str, b: str, limit: int = 2) -> int:
    """Optimal-string-alignment distance, returning ``limit + 1`` early once it cannot be <= limit."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] | None = None
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if prev2 is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def max_edits(term: str) -> int:
    """Edits allowed for a typo: none for short words (too many false friends), 1 up to 7 letters, then 2."""
    if len(term) < 4:
        return 0
    return 1 if len(term) <= 7 else 2


def _trigrams(term: str) -> set[str]:
    padded = f"${term}$"
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


@dataclass
class QueryTerm:
    """One resolved query term: which vocabulary term it hit, how, and with which weight."""

    text: str  # the folded word the user typed
    term_id: int  # vocabulary id, -1 when nothing matched
    weight: float
    kind: str  # "exact" | "typo" | "prefix" | "none"
    edits: int = 0


@dataclass
class SearchResult:
    """Ranked documents of one query (indices into the index's doc arrays) plus the interpretation."""

    doc_indices: np.ndarray
    scores: np.ndarray
    terms: list[QueryTerm] = field(default_factory=list)
    corrected_query: str | None = None
    total: int = 0


@dataclass
class SearchIndex:
    """BM25F index over one store's catalog. Build with :meth:`build`; learned arrays end in ``_``."""

    k1: float = 1.2
    b: float = 0.75
    field_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FIELD_WEIGHTS))
    typo_penalty: float = 0.6
    prefix_penalty: float = 0.8
    max_prefix_expansions: int = 30

    doc_ids_: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    vocab_: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="<U1"))  # sorted
    surface_: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="<U1"))
    df_: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    idf_: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    weights_: sp.csc_matrix | None = None  # (n_docs, n_terms) BM25F contribution of each term
    trigram_vocab_: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="<U1"))
    term_trigrams_: sp.csc_matrix | None = None  # (n_terms, n_trigrams), binary
    _term_index: dict[str, int] = field(default_factory=dict, repr=False)
    _vocab_list: list[str] = field(default_factory=list, repr=False)
    _trigram_index: dict[str, int] = field(default_factory=dict, repr=False)

    # --- building -------------------------------------------------------------------------------

    def build(self, doc_ids: Sequence[int], docs: Sequence[Mapping[str, str]]) -> SearchIndex:
        """Index ``docs`` (one mapping of field -> text per doc) under the integer ``doc_ids``."""
        if len(doc_ids) != len(docs):
            raise ValueError("doc_ids and docs differ in length")
        fields = [f for f in FIELDS if self.field_weights.get(f, 0) > 0]
        n_docs = len(docs)
        per_field_counts: dict[str, list[Counter[str]]] = {f: [] for f in fields}
        surfaces: dict[str, Counter[str]] = {}
        for doc in docs:
            for f in fields:
                pairs = tokenize_with_surface(str(doc.get(f) or ""))
                per_field_counts[f].append(Counter(term for term, _ in pairs))
                for term, surface in pairs:
                    surfaces.setdefault(term, Counter())[surface] += 1
        vocab = sorted(surfaces)
        index = {t: i for i, t in enumerate(vocab)}
        n_terms = len(vocab)

        pseudo_tf = sp.csr_matrix((n_docs, n_terms), dtype=np.float64)
        for f in fields:
            rows, cols, vals = [], [], []
            lengths = np.zeros(n_docs, dtype=np.float64)
            for d, counts in enumerate(per_field_counts[f]):
                lengths[d] = sum(counts.values())
                for term, c in counts.items():
                    rows.append(d)
                    cols.append(index[term])
                    vals.append(c)
            avg = lengths.mean() if n_docs and lengths.mean() > 0 else 1.0
            norm = 1.0 - self.b + self.b * lengths / avg  # BM25's length normalisation, per field
            counts_m = sp.csr_matrix((vals, (rows, cols)), shape=(n_docs, n_terms), dtype=np.float64)
            pseudo_tf = pseudo_tf + sp.diags(self.field_weights[f] / norm) @ counts_m
        pseudo_tf = sp.csr_matrix(pseudo_tf)
        df = np.diff(sp.csc_matrix(pseudo_tf).indptr).astype(np.int64)
        # Lucene's idf: never negative, so a term in most documents still counts a little.
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        sat = pseudo_tf.copy()
        sat.data = sat.data * (self.k1 + 1.0) / (sat.data + self.k1)
        weights = sp.csc_matrix(sat @ sp.diags(idf))

        self.doc_ids_ = np.asarray(doc_ids, dtype=np.int64)
        self.vocab_ = np.asarray(vocab, dtype=str) if vocab else np.zeros(0, dtype="<U1")
        self.surface_ = (
            np.asarray([surfaces[t].most_common(1)[0][0] for t in vocab], dtype=str)
            if vocab
            else np.zeros(0, dtype="<U1")
        )
        self.df_ = df
        self.idf_ = idf
        self.weights_ = weights
        self._build_trigrams()
        self._finish()
        return self

    def _build_trigrams(self) -> None:
        grams: dict[str, int] = {}
        rows, cols = [], []
        for t_id, term in enumerate(self.vocab_.tolist()):
            if is_cjk(term) or len(term) < 4:
                continue  # only Latin words long enough to be typo-corrected
            for g in _trigrams(term):
                rows.append(t_id)
                cols.append(grams.setdefault(g, len(grams)))
        self.trigram_vocab_ = np.asarray(list(grams), dtype=str) if grams else np.zeros(0, dtype="<U1")
        self.term_trigrams_ = sp.csc_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(self.vocab_), len(grams))
        )

    def _finish(self) -> None:
        self._vocab_list = self.vocab_.tolist()
        self._term_index = {t: i for i, t in enumerate(self._vocab_list)}
        self._trigram_index = {g: i for i, g in enumerate(self.trigram_vocab_.tolist())}

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids_)

    # --- query interpretation ------------------------------------------------------------------

    def term_id(self, term: str) -> int | None:
        return self._term_index.get(term)

    def closest_term(self, term: str, exclude: int | None = None) -> tuple[int, int] | None:
        """``(term_id, edits)`` of the best vocabulary term within :func:`max_edits`, or ``None``."""
        limit = max_edits(term)
        if limit == 0 or self.term_trigrams_ is None or not self._trigram_index:
            return None
        cols = [self._trigram_index[g] for g in _trigrams(term) if g in self._trigram_index]
        if not cols:
            return None
        shared = np.asarray(self.term_trigrams_[:, cols].sum(axis=1)).ravel()
        candidates = np.flatnonzero(shared > 0)
        if candidates.size > 200:  # only the most trigram-similar ones are worth an edit distance
            candidates = candidates[np.argsort(-shared[candidates], kind="stable")[:200]]
        best: tuple[int, int, int] | None = None  # (edits, -df, term_id)
        for t_id in candidates.tolist():
            if t_id == exclude:
                continue
            d = damerau_levenshtein(term, self._vocab_list[t_id], limit)
            if d <= limit:
                key = (d, -int(self.df_[t_id]), t_id)
                if best is None or key < best:
                    best = key
        return None if best is None else (best[2], best[0])

    def completions(self, prefix: str) -> list[int]:
        """Vocabulary ids starting with ``prefix`` (most frequent first, capped)."""
        if not prefix:
            return []
        lo = bisect.bisect_left(self._vocab_list, prefix)
        hi = bisect.bisect_left(self._vocab_list, prefix + "\U0010ffff")
        ids = np.arange(lo, hi)
        if ids.size > self.max_prefix_expansions:
            ids = ids[np.argsort(-self.df_[ids], kind="stable")[: self.max_prefix_expansions]]
        return ids.tolist()

    def interpret(self, query: str, *, prefix_last: bool = True) -> tuple[list[QueryTerm], str | None]:
        """Resolve the query's words to weighted vocabulary terms; returns the terms and the corrected query."""
        pairs = tokenize_with_surface(query)
        resolved: list[QueryTerm] = []
        corrected_words: list[str] = []
        corrected = False
        seen: set[int] = set()
        for pos, (term, surface) in enumerate(pairs):
            last = prefix_last and pos == len(pairs) - 1
            t_id = self.term_id(term)
            if t_id is not None:
                if t_id not in seen:
                    resolved.append(QueryTerm(surface, t_id, 1.0, "exact"))
                    seen.add(t_id)
                if last and not is_cjk(term) and len(surface) >= 2:
                    # The word is complete already; its longer completions only fill in after it.
                    for c_id in self.completions(surface):
                        if c_id not in seen:
                            resolved.append(QueryTerm(surface, c_id, 0.5 * self.prefix_penalty, "prefix"))
                            seen.add(c_id)
                corrected_words.append(surface)
                continue
            if last and len(surface) >= 2:
                completions = self.completions(surface)
                if completions:
                    for c_id in completions:
                        if c_id not in seen:
                            resolved.append(QueryTerm(surface, c_id, self.prefix_penalty, "prefix"))
                            seen.add(c_id)
                    corrected_words.append(surface)
                    continue
            hit = None if is_cjk(term) else self.closest_term(term)
            if hit is None:
                resolved.append(QueryTerm(surface, -1, 0.0, "none"))
                corrected_words.append(surface)
                continue
            c_id, edits = hit
            if c_id not in seen:
                resolved.append(QueryTerm(surface, c_id, self.typo_penalty**edits, "typo", edits))
                seen.add(c_id)
            corrected_words.append(str(self.surface_[c_id]))
            corrected = True
        return resolved, (" ".join(corrected_words) if corrected else None)

    # --- scoring ----------------------------------------------------------------------------------

    def score(self, terms: Iterable[QueryTerm]) -> np.ndarray:
        """BM25F score of every document for the resolved terms (0 where nothing matched)."""
        scores = np.zeros(self.n_docs, dtype=np.float64)
        usable = [t for t in terms if t.term_id >= 0 and t.weight > 0]
        if not usable or self.weights_ is None:
            return scores
        # Straight from the CSC arrays: scipy's column fancy-indexing plus mat-vec cost ~40 µs of
        # validation and copies for a handful of columns. bincount adds each document's terms in the
        # same order (column by column, from 0.0) as the mat-vec did, so scores are bit-identical.
        indptr, indices, data = self.weights_.indptr, self.weights_.indices, self.weights_.data
        if len(usable) == 1:
            lo, hi = indptr[usable[0].term_id], indptr[usable[0].term_id + 1]
            scores[indices[lo:hi]] = data[lo:hi] * usable[0].weight
            return scores
        spans = [(indptr[t.term_id], indptr[t.term_id + 1], t.weight) for t in usable]
        docs = np.concatenate([indices[lo:hi] for lo, hi, _ in spans])
        values = np.concatenate([data[lo:hi] * weight for lo, hi, weight in spans])
        return np.bincount(docs, weights=values, minlength=self.n_docs)

    def search(
        self,
        query: str,
        *,
        limit: int | None = 200,
        mask: np.ndarray | None = None,
        prefix_last: bool = True,
    ) -> SearchResult:
        """Top documents for ``query`` (best first), optionally restricted by a boolean ``mask``."""
        terms, corrected = self.interpret(query, prefix_last=prefix_last)
        scores = self.score(terms)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        hits = np.flatnonzero(scores > 0)
        total = int(hits.size)
        if limit is not None and hits.size > limit:
            part = np.argpartition(-scores[hits], limit - 1)[:limit]
            hits = hits[part]
        # Stable tie-break on doc id keeps pagination deterministic.
        order = np.lexsort((self.doc_ids_[hits], -scores[hits]))
        hits = hits[order]
        return SearchResult(hits, scores[hits], terms, corrected, total)

    # --- persistence (no pickle) -----------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        w = self.weights_ if self.weights_ is not None else sp.csc_matrix((self.n_docs, 0))
        tg = self.term_trigrams_ if self.term_trigrams_ is not None else sp.csc_matrix((len(self.vocab_), 0))
        params = np.asarray(
            [self.k1, self.b, self.typo_penalty, self.prefix_penalty, self.max_prefix_expansions], dtype=np.float64
        )
        return {
            "params": params,
            "field_names": np.asarray(list(self.field_weights), dtype=str),
            "field_weights": np.asarray(list(self.field_weights.values()), dtype=np.float64),
            "doc_ids": self.doc_ids_,
            "vocab": self.vocab_,
            "surface": self.surface_,
            "df": self.df_,
            "idf": self.idf_,
            "w_data": w.data,
            "w_indices": w.indices,
            "w_indptr": w.indptr,
            "w_shape": np.asarray(w.shape, dtype=np.int64),
            "trigram_vocab": self.trigram_vocab_,
            "tg_data": tg.data,
            "tg_indices": tg.indices,
            "tg_indptr": tg.indptr,
            "tg_shape": np.asarray(tg.shape, dtype=np.int64),
        }

    def save(self, path: str | Path) -> None:
        np.savez(path, **self.to_arrays())

    @classmethod
    def load(cls, path: str | Path) -> SearchIndex:
        with np.load(path, allow_pickle=False) as a:
            return cls.from_arrays({k: a[k] for k in a.files})

    @classmethod
    def from_arrays(cls, a: Mapping[str, Any]) -> SearchIndex:
        k1, b, typo, prefix, max_prefix = a["params"].tolist()
        idx = cls(
            k1=k1,
            b=b,
            field_weights=dict(zip(a["field_names"].tolist(), a["field_weights"].tolist(), strict=True)),
            typo_penalty=typo,
            prefix_penalty=prefix,
            max_prefix_expansions=int(max_prefix),
        )
        idx.doc_ids_ = a["doc_ids"]
        idx.vocab_ = a["vocab"]
        idx.surface_ = a["surface"]
        idx.df_ = a["df"]
        idx.idf_ = a["idf"]
        idx.weights_ = sp.csc_matrix((a["w_data"], a["w_indices"], a["w_indptr"]), shape=tuple(a["w_shape"]))
        idx.trigram_vocab_ = a["trigram_vocab"]
        idx.term_trigrams_ = sp.csc_matrix((a["tg_data"], a["tg_indices"], a["tg_indptr"]), shape=tuple(a["tg_shape"]))
        idx._finish()
        return idx
