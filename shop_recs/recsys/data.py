"""Interaction logs: original ids <-> contiguous indices, CSV loading and the UCI Online Retail loader.

The engine works on integer indices only; :class:`Interactions` is the one place (outside Django)
that remembers which original user/item id each row/column stands for, so that evaluation output
such as dumped recommendations can be written back in the caller's ids.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: Where the benchmarks expect the UCI Online Retail file (relative to the project root).
UCI_FILE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "online_retail.csv.gz"

#: Stock codes in the UCI file that are fees, postage, adjustments or vouchers, not products.
UCI_NON_PRODUCT_CODES = frozenset(
    {"POST", "DOT", "C2", "M", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "CRUK COMMISSION"}
)
_UCI_NON_PRODUCT_PATTERN = re.compile(r"^(gift_\d+_\d+)$", re.IGNORECASE)


class DataError(ValueError):
    """A malformed input file; the message names the file, line and column."""


@dataclass
class Interactions:
    """An interaction log in index space.

    ``users[r]``/``items[r]`` are the row's user/item indices into ``user_ids``/``item_ids`` (the
    original ids, strings or ints), ``values[r]`` its weight (1.0 when the source had none) and
    ``timestamps[r]`` seconds since the epoch (UTC) or ``None`` for the whole log.
    """

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamps: np.ndarray | None = None
    #: optional text per item (aligned with ``item_ids``), e.g. product titles for content models
    item_text: np.ndarray | None = None
    _user_index: dict[Any, int] | None = field(default=None, repr=False, compare=False)
    _item_index: dict[Any, int] | None = field(default=None, repr=False, compare=False)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    @property
    def user_index(self) -> dict[Any, int]:
        """Original user id -> row index."""
        if self._user_index is None:
            self._user_index = {uid: i for i, uid in enumerate(self.user_ids.tolist())}
        return self._user_index

    @property
    def item_index(self) -> dict[Any, int]:
        """Original item id -> column index."""
        if self._item_index is None:
            self._item_index = {iid: i for i, iid in enumerate(self.item_ids.tolist())}
        return self._item_index

    def to_csr(self, binary: bool = False) -> sp.csr_matrix:
        """``(n_users, n_items)`` float32 CSR; duplicate (user, item) rows are summed."""
        data = np.ones(len(self), dtype=np.float32) if binary else self.values.astype(np.float32)
        mat = sp.csr_matrix((data, (self.users, self.items)), shape=(self.n_users, self.n_items), dtype=np.float32)
        mat.sum_duplicates()
        if binary:
            mat.data[:] = 1.0
        mat.sort_indices()
        return mat

    def subset(self, mask: np.ndarray) -> Interactions:
        """The rows selected by a boolean mask, in the same index space."""
        return Interactions(
            users=self.users[mask],
            items=self.items[mask],
            values=self.values[mask],
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            timestamps=None if self.timestamps is None else self.timestamps[mask],
            item_text=self.item_text,
            _user_index=self._user_index,
            _item_index=self._item_index,
        )

    def reindex(self, user_ids: np.ndarray, item_ids: np.ndarray) -> tuple[Interactions, np.ndarray]:
        """Map rows into another id space; returns the mapped log and the mask of rows that fit in it.

        Rows whose user or item is absent from the target space are dropped (the mask says which).
        """
        target_u = {uid: i for i, uid in enumerate(np.asarray(user_ids).tolist())}
        target_i = {iid: i for i, iid in enumerate(np.asarray(item_ids).tolist())}
        u_map = np.array([target_u.get(uid, -1) for uid in self.user_ids.tolist()], dtype=np.int64)
        i_map = np.array([target_i.get(iid, -1) for iid in self.item_ids.tolist()], dtype=np.int64)
        new_u = u_map[self.users] if len(self) else np.zeros(0, dtype=np.int64)
        new_i = i_map[self.items] if len(self) else np.zeros(0, dtype=np.int64)
        keep = (new_u >= 0) & (new_i >= 0)
        mapped = Interactions(
            users=new_u[keep],
            items=new_i[keep],
            values=self.values[keep],
            user_ids=np.asarray(user_ids),
            item_ids=np.asarray(item_ids),
            timestamps=None if self.timestamps is None else self.timestamps[keep],
        )
        if self.item_text is not None:
            text = dict(zip(self.item_ids.tolist(), self.item_text.tolist(), strict=True))
            mapped.item_text = np.array([text.get(iid, "") for iid in mapped.item_ids.tolist()], dtype=object)
        return mapped, keep


def from_arrays(
    users: Sequence[Any] | np.ndarray,
    items: Sequence[Any] | np.ndarray,
    values: Sequence[float] | np.ndarray | None = None,
    timestamps: Sequence[Any] | np.ndarray | None = None,
) -> Interactions:
    """Build :class:`Interactions` from parallel arrays of original ids.

    Indices are assigned in sorted order of the original ids, so the same data always gets the same
    indices. ``timestamps`` may be epoch seconds or anything :func:`pandas.to_datetime` understands.
    """
    users_arr = np.asarray(users)
    items_arr = np.asarray(items)
    if len(users_arr) != len(items_arr):
        raise ValueError("users and items must have the same length")
    user_ids, u_idx = np.unique(users_arr, return_inverse=True)
    item_ids, i_idx = np.unique(items_arr, return_inverse=True)
    vals = np.ones(len(users_arr), dtype=np.float32) if values is None else np.asarray(values, dtype=np.float32)
    ts = None if timestamps is None else _to_epoch_seconds(np.asarray(timestamps))
    return Interactions(
        users=u_idx.astype(np.int64).ravel(),
        items=i_idx.astype(np.int64).ravel(),
        values=vals,
        user_ids=user_ids,
        item_ids=item_ids,
        timestamps=ts,
    )


def _to_epoch_seconds(raw: np.ndarray) -> np.ndarray:
    if np.issubdtype(raw.dtype, np.number):
        return raw.astype(np.int64)
    return _epoch(pd.to_datetime(pd.Series(raw), utc=True, format="ISO8601"))


def _epoch(parsed: pd.Series) -> np.ndarray:
    """Seconds since the epoch, whatever resolution pandas chose for the datetimes."""
    return ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def _ids_column(col: pd.Series) -> np.ndarray:
    """Integer ids stay ints (so ``42`` and ``"42"`` round-trip as the user wrote them), else strings."""
    if col.str.fullmatch(r"-?\d{1,18}").all():
        return col.astype(np.int64).to_numpy()
    return col.to_numpy(dtype=object).astype(str)


def load_csv(path: str | Path) -> Interactions:
    """Load a CSV with a header holding ``user,item`` and optionally ``value`` and ``timestamp``.

    * ids may be strings or integers (all-integer columns are kept as ints);
    * ``value`` must be a finite number (missing column -> every row weighs 1);
    * ``timestamp`` is epoch seconds (an integer or decimal number) or an ISO 8601 date/time;
      ISO values without a zone are taken as UTC.

    Raises :class:`DataError` naming the line (1-based, the header is line 1) and column of the first
    malformed row.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    for required in ("user", "item"):
        if required not in frame.columns:
            raise DataError(f"{path}: line 1: the header has no {required!r} column (found {list(frame.columns)})")

    def fail(mask: np.ndarray, column: str, what: str) -> None:
        bad = np.flatnonzero(mask)
        if len(bad):
            row = int(bad[0])
            raise DataError(f"{path}: line {row + 2}, column {column!r}: {what} (got {frame[column].iloc[row]!r})")

    for col in ("user", "item"):
        frame[col] = frame[col].str.strip()
        fail((frame[col] == "").to_numpy(), col, "empty id")

    values = None
    if "value" in frame.columns:
        num = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
        fail(~np.isfinite(num), "value", "not a finite number")
        values = num.astype(np.float32)

    timestamps = None
    if "timestamp" in frame.columns:
        raw = frame["timestamp"].str.strip()
        fail((raw == "").to_numpy(), "timestamp", "empty timestamp")
        numeric = pd.to_numeric(raw, errors="coerce")
        if numeric.notna().all():
            timestamps = numeric.to_numpy(dtype=np.float64).astype(np.int64)
        else:
            parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
            fail(parsed.isna().to_numpy(), "timestamp", "neither epoch seconds nor an ISO 8601 date/time")
            timestamps = _epoch(parsed)

    return from_arrays(_ids_column(frame["user"]), _ids_column(frame["item"]), values, timestamps)


def clean_online_retail(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep product purchases only: the filters the benchmark applies to the UCI Online Retail log.

    Drops cancellation invoices (``InvoiceNo`` starting with ``C``), rows with non-positive
    ``Quantity`` or ``UnitPrice``, guest rows with no ``CustomerID`` and non-product stock codes
    (postage, manual adjustments, discounts, bank charges, fees, commissions, gift vouchers, ...).
    """
    inv = frame["InvoiceNo"].astype(str).str.strip()
    code = frame["StockCode"].astype(str).str.strip()
    qty = pd.to_numeric(frame["Quantity"], errors="coerce")
    price = pd.to_numeric(frame["UnitPrice"], errors="coerce")
    cust = frame["CustomerID"].astype(str).str.strip()
    keep = (
        ~inv.str.upper().str.startswith("C")
        & (qty > 0)
        & (price > 0)
        & frame["CustomerID"].notna()
        & (cust != "")
        & ~code.str.upper().isin(UCI_NON_PRODUCT_CODES)
        & ~code.str.match(_UCI_NON_PRODUCT_PATTERN)
    )
    out = frame.loc[keep].copy()
    out["StockCode"] = code[keep].str.upper()
    # CustomerID is float-like ("17850.0"): store the integer.
    out["CustomerID"] = pd.to_numeric(out["CustomerID"]).astype(np.int64)
    out["Quantity"] = qty[keep]
    return out


def load_online_retail(path: str | Path | None = None) -> Interactions:
    """Load the UCI Online Retail file as purchases (user=CustomerID, item=StockCode, ts=InvoiceDate).

    Each kept invoice line weighs 1, so after :meth:`Interactions.to_csr` a cell counts how many
    times the customer bought the product. Credit: UCI Machine Learning Repository, Online Retail
    (Chen, Sain & Guo, 2012), CC BY 4.0.
    """
    path = Path(path) if path is not None else UCI_FILE
    if not path.exists():
        raise FileNotFoundError(f"UCI Online Retail file not found: {path}")
    frame = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str})
    frame = clean_online_retail(frame)
    ts = pd.to_datetime(frame["InvoiceDate"], utc=True, format="ISO8601")
    inter = from_arrays(
        frame["CustomerID"].to_numpy(),
        frame["StockCode"].to_numpy(dtype=object).astype(str),
        None,
        _epoch(ts),
    )
    # A stock code carries several slightly different descriptions: keep the most frequent one.
    desc = frame.assign(Description=frame["Description"].fillna("").astype(str).str.strip())
    top = desc.groupby("StockCode")["Description"].agg(lambda s: s.value_counts().index[0] if len(s) else "")
    inter.item_text = top.reindex(inter.item_ids).fillna("").to_numpy(dtype=object)
    return inter
