"""Writes of the analytics app: profile runs, segmentation, rule segments, exports, settings.

* ``start_profile_run(store, mode, user)`` creates a queued :class:`ProfileRun` and enqueues the task
  on commit; ``run_profiles(run_id)`` is the task body (progress on the row, failures recorded).
* ``build_profiles(store, mode)`` computes and upserts profiles synchronously (tests, benchmarks).
* ``build_auto_segments`` / ``refresh_segment_memberships`` live in ``analytics.segments``.
* ``export_segment_csv`` writes the CSV and logs a :class:`SegmentExport`.
* ``release_counts`` is the one way a noisy figure leaves the store: it finds the release of this
  data version in the ledger (:class:`DPRelease`) or, budget permitting, draws and records a new one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
from django.db import connection, transaction
from django.db.models import Count, Max, Sum
from django.utils import timezone
from django.utils.translation import gettext_noop

from analytics import privacy
from analytics import segments as seg
from analytics import sql as analytics_sql
from analytics.models import (
    CustomerProfile,
    DPRelease,
    ProfileRun,
    Segment,
    SegmentExport,
    StoreAnalyticsSettings,
)
from analytics.profiles import ProfileConfig, compute_profiles, predict_interests, read_events, read_products
from shop_recs.activity.models import Customer, Event
from shop_recs.platform import jobs
from shop_recs.platform.jobs import JobProgress, JobStatus
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.artifacts import load_active_model

logger = logging.getLogger(__name__)

#: Profile fields a CSV export may include (besides the customer's external id, always first).
EXPORT_FIELDS: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "lifetime_value",
    "aov",
    "price_band",
    "price_ratio",
    "churn_risk",
    "sessions",
    "views_per_purchase",
    "last_purchase_at",
    "category_affinity",
    "brand_affinity",
    "predicted_interests",
)
_UPDATE_FIELDS = (
    "run",
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "lifetime_value",
    "aov",
    "first_seen",
    "last_seen",
    "last_purchase_at",
    "category_affinity",
    "brand_affinity",
    "price_band",
    "price_ratio",
    "events",
    "dow_histogram",
    "hour_histogram",
    "sessions",
    "mean_session_events",
    "views_per_purchase",
    "median_gap_days",
    "churn_risk",
    "predicted_interests",
    "computed_at",
)


def get_settings(store: Store) -> StoreAnalyticsSettings:
    with store_scope(store):
        obj, _ = StoreAnalyticsSettings.objects.get_or_create(store=store)
    return obj


# --- profile runs ---------------------------------------------------------------------------------


def start_profile_run(
    store: Store, mode: str = ProfileRun.Mode.FULL, user: Any = None, *, segment: bool = True, enqueue: bool = True
) -> ProfileRun:
    """A queued run; the Celery task starts once the transaction commits."""
    if mode not in ProfileRun.Mode.values:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(ProfileRun.Mode.values)}")
    with store_scope(store), transaction.atomic():
        run = ProfileRun.objects.create(
            store=store,
            mode=mode,
            segment=segment,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        if enqueue:
            # tasks.py imports this module for its task bodies: importing it at the top would be a cycle.
            from analytics.tasks import compute_profiles_task

            jobs.enqueue_on_commit(compute_profiles_task, run)
    return run


def run_profiles(run_id: int) -> ProfileRun:
    """Task body: compute the run's profiles (and segments), recording progress and the outcome."""
    run = ProfileRun.all_stores.select_related("store").get(pk=run_id)
    if run.is_finished:
        return run
    # A "running" run is claimed again too: its worker died and this is the redelivery.
    if not jobs.claim(run, statuses=(JobStatus.QUEUED, JobStatus.RUNNING)):
        return run
    try:
        build_profiles(run.store, run.mode, run=run, segment=run.segment)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded on the run row
        logger.exception("profile run %s failed", run.pk)
        jobs.fail(run, exc)
    run.refresh_from_db()
    return run


def _last_watermark(store: Store, exclude: int | None) -> int | None:
    qs = ProfileRun.objects.filter(status=JobStatus.SUCCEEDED, max_event_id__isnull=False)
    if exclude:
        qs = qs.exclude(pk=exclude)
    return qs.aggregate(m=Max("max_event_id"))["m"]


def _population() -> pd.DataFrame:
    rows = list(
        CustomerProfile.objects.values_list(
            "customer_id", "recency_days", "frequency", "monetary", "median_gap_days", "last_purchase_at"
        )
    )
    df = pd.DataFrame(rows, columns=["customer", "recency_days", "frequency", "monetary", "median_gap_days", "lp"])
    df = df.set_index("customer")
    # Recency of unchanged customers moves with the clock: recompute it from their last purchase.
    lp = pd.to_datetime(df["lp"], utc=True)
    df["recency_days"] = (pd.Timestamp.now(tz="UTC") - lp).dt.total_seconds() / 86_400
    return df.drop(columns=["lp"])


def build_profiles(
    store: Store,
    mode: str = ProfileRun.Mode.FULL,
    *,
    run: ProfileRun | None = None,
    segment: bool = True,
    as_of: datetime | None = None,
    cfg: ProfileConfig | None = None,
) -> ProfileRun:
    """Compute and upsert profiles of every customer (full) or of those with new events (incremental)."""
    with store_scope(store):
        # Recency, churn and decay are measured from the store's latest event, not the wall clock:
        # an imported history (UCI Online Retail ends in 2011) then profiles as it stood at its end
        # instead of every customer being 15 years lapsed; for a live store the two coincide.
        if as_of is None:
            latest = Event.objects.aggregate(t=Max("timestamp"))["t"]
            as_of = min(latest, timezone.now()) if latest else timezone.now()
        if run is None:
            run = ProfileRun.objects.create(
                store=store, mode=mode, segment=segment, status=JobStatus.RUNNING, started_at=timezone.now()
            )
        progress = JobProgress(run)
        progress.stage(gettext_noop("reading events"), 5)
        max_id = Event.objects.aggregate(m=Max("id"))["m"]
        watermark = _last_watermark(store, run.pk) if mode == ProfileRun.Mode.INCREMENTAL else None
        population = None
        if mode == ProfileRun.Mode.INCREMENTAL and watermark is not None:
            changed = set(
                Event.objects.filter(pk__gt=watermark, customer__isnull=False)
                .values_list("customer_id", flat=True)
                .distinct()
            )
            # Customers created since the last run get a profile too, even without events.
            profiled = set(CustomerProfile.objects.values_list("customer_id", flat=True))
            changed |= set(Customer.objects.values_list("id", flat=True)) - profiled
            customer_ids = np.array(sorted(changed), dtype=np.int64)
            events = read_events(customer_ids) if len(customer_ids) else read_events(np.empty(0, np.int64))
            population = _population()
        else:
            customer_ids = np.array(list(Customer.objects.values_list("id", flat=True)), dtype=np.int64)
            events = read_events(store_id=store.pk)
        products = read_products()

        progress.stage(gettext_noop("computing profiles"), 40)
        frame = compute_profiles(
            events, customer_ids, products, as_of, cfg, tz=store.timezone or "UTC", population=population
        )
        progress.stage(gettext_noop("predicting interests"), 60)
        interests = _interests(store, events, customer_ids, products)
        progress.stage(gettext_noop("saving profiles"), 70)
        # One transaction for the profiles, the segments and the run's success: a worker killed
        # half-way (SIGKILL, OOM) leaves the old complete set, never new profiles under old segments
        # or a "running" run whose data is already live. No progress write inside: it would hold
        # the run row's lock until commit (and block the stale sweep on it).
        with transaction.atomic():
            n = _save(store, run, frame, interests, as_of)
            jobs.pause_for_fault_test("profiles.saved")
            if segment:
                if mode == ProfileRun.Mode.FULL or not Segment.objects.filter(kind=Segment.Kind.AUTO).exists():
                    seg.build_auto_segments(store)
                else:
                    seg.refresh_segment_memberships(store)
            jobs.succeed(
                run,
                timings=progress.finish(),
                n_customers=n,
                n_events=len(events),
                n_skipped_events=int(events.attrs.get("skipped_rows", 0)),
                max_event_id=max_id if max_id is not None else watermark,
            )
        run.refresh_from_db()
    return run


def _interests(store: Store, events: pd.DataFrame, customer_ids: np.ndarray, products: pd.DataFrame) -> dict:
    """Predicted next categories from the active recommender; empty (not an error) without one."""
    try:
        loaded = load_active_model(store)
    except Exception:  # noqa: BLE001 - profiles must not fail because serving has a problem
        logger.exception("store %s: could not load the active model; skipping predicted interests", store.pk)
        return {}
    if loaded is None:
        return {}
    try:
        return predict_interests(loaded, events, customer_ids, products)
    except Exception:  # noqa: BLE001
        logger.exception("store %s: predicting interests failed; skipping", store.pk)
        return {}


def _ts(value: float) -> datetime | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return datetime.fromtimestamp(float(value), tz=UTC)


def _num(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


#: Profile columns written on insert and kept on update: segments own them.
_INSERT_ONLY = ("segment_ids",)


def _save(store: Store, run: ProfileRun, frame: pd.DataFrame, interests: dict, as_of: datetime) -> int:
    """Upsert one row per customer (insert or update on the customer's unique key).

    PostgreSQL: one ``COPY`` into a staging table and one ``INSERT … ON CONFLICT`` (53 s -> a few
    seconds at 200k customers, docs/benchmarks_profiles.md). Elsewhere: ``bulk_create`` batches.
    """
    if connection.vendor == "postgresql":
        return _save_by_copy(store, run, frame, interests, as_of)
    return _save_by_orm(store, run, frame, interests, as_of)


def _save_by_copy(store: Store, run: ProfileRun, frame: pd.DataFrame, interests: dict, as_of: datetime) -> int:
    """Column-wise: 200k model instances and a ``json.dumps`` per cell took most of the 53 s; the
    values are the ones ``_profiles`` gives the ORM path (``test_profiles_copy.py`` compares)."""
    df = frame.reset_index()
    n = len(df)
    customers = df["customer"].to_numpy(np.int64).tolist()
    values: dict[str, list] = {
        "store": [store.pk] * n,
        "customer": customers,
        "run": [run.pk] * n,
        "computed_at": [as_of] * n,
        "predicted_interests": [orjson.dumps(interests.get(c, [])).decode() for c in customers],
        "segment_ids": ["[]"] * n,
        "price_band": df["price_band"].fillna("").tolist(),
    }
    for name in ("frequency", "r_score", "f_score", "m_score", "events", "sessions"):
        values[name] = df[name].to_numpy(np.int64).tolist()
    for name in ("monetary", "lifetime_value", "churn_risk"):
        values[name] = df[name].to_numpy(np.float64).tolist()
    for name in ("recency_days", "aov", "price_ratio", "mean_session_events", "views_per_purchase", "median_gap_days"):
        values[name] = [None if math.isnan(v) else v for v in df[name].to_numpy(np.float64).tolist()]
    for name in ("first_seen", "last_seen", "last_purchase_at"):
        values[name] = [_ts(v) for v in df[name].to_numpy(np.float64).tolist()]
    for name in ("category_affinity", "brand_affinity", "dow_histogram", "hour_histogram"):
        values[name] = [orjson.dumps(v).decode() for v in df[name].tolist()]
    fields = ["store", "customer", *_UPDATE_FIELDS, *_INSERT_ONLY]
    return analytics_sql.copy_profiles_in(
        store.pk,
        CustomerProfile._meta.db_table,
        [CustomerProfile._meta.get_field(name).column for name in fields],
        zip(*(values[name] for name in fields), strict=True),
        conflict=CustomerProfile._meta.get_field("customer").column,
        insert_only=[CustomerProfile._meta.get_field(name).column for name in _INSERT_ONLY],
    )


def _save_by_orm(store: Store, run: ProfileRun, frame: pd.DataFrame, interests: dict, as_of: datetime) -> int:
    batch: list[CustomerProfile] = []
    n = 0
    for profile in _profiles(store, run, frame, interests, as_of):
        batch.append(profile)
        if len(batch) >= 2_000:
            n += _flush(batch)
            batch = []
    if batch:
        n += _flush(batch)
    return n


def _profiles(store: Store, run: ProfileRun, frame: pd.DataFrame, interests: dict, as_of: datetime):
    """One unsaved ``CustomerProfile`` per row of ``frame``."""
    records = frame.reset_index().to_dict("records")
    for r in records:
        c = int(r["customer"])
        yield (
            CustomerProfile(
                store=store,
                customer_id=c,
                run=run,
                recency_days=_num(r["recency_days"]),
                frequency=int(r["frequency"]),
                monetary=float(r["monetary"]),
                r_score=int(r["r_score"]),
                f_score=int(r["f_score"]),
                m_score=int(r["m_score"]),
                lifetime_value=float(r["lifetime_value"]),
                aov=_num(r["aov"]),
                first_seen=_ts(r["first_seen"]),
                last_seen=_ts(r["last_seen"]),
                last_purchase_at=_ts(r["last_purchase_at"]),
                category_affinity=r["category_affinity"],
                brand_affinity=r["brand_affinity"],
                price_band=r["price_band"],
                price_ratio=_num(r["price_ratio"]),
                events=int(r["events"]),
                dow_histogram=r["dow_histogram"],
                hour_histogram=r["hour_histogram"],
                sessions=int(r["sessions"]),
                mean_session_events=_num(r["mean_session_events"]),
                views_per_purchase=_num(r["views_per_purchase"]),
                median_gap_days=_num(r["median_gap_days"]),
                churn_risk=float(r["churn_risk"]),
                predicted_interests=interests.get(c, []),
                computed_at=as_of,
            )
        )


def _flush(batch: list[CustomerProfile]) -> int:
    CustomerProfile.objects.bulk_create(
        batch, update_conflicts=True, unique_fields=["customer"], update_fields=list(_UPDATE_FIELDS)
    )
    return len(batch)


# --- exports ---------------------------------------------------------------------------------------


def export_segment_csv(store: Store, segment: Segment, fields: list[str], user: Any) -> tuple[str, int]:
    """The segment's customers as CSV (external id + the chosen whitelisted fields), logged."""
    unknown = [f for f in fields if f not in EXPORT_FIELDS]
    if unknown:
        raise ValueError(f"unknown export field(s): {', '.join(unknown)}")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["external_id", *fields])
    n = 0
    with store_scope(store):
        qs = seg.segment_queryset(segment).order_by("customer__external_id")
        for row in qs.values_list("customer__external_id", *fields).iterator(chunk_size=5_000):
            writer.writerow([_csv_cell(v) for v in row])
            n += 1
        SegmentExport.objects.create(
            store=store, segment=segment, segment_name=segment.name, user=user, fields=list(fields), row_count=n
        )
    return buf.getvalue(), n


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and _looks_like_formula(value):
        return "'" + value  # keep spreadsheets from evaluating a cell as a formula
    return value


#: Spreadsheets evaluate a cell that starts with one of these, also after leading blanks (OWASP
#: "CSV injection"); a leading TAB or CR is itself a known way to smuggle a formula through.
_FORMULA_CHARS = ("=", "+", "-", "@")


def _looks_like_formula(value: str) -> bool:
    return value[:1] in ("\t", "\r") or value.lstrip(" \t\r\n")[:1] in _FORMULA_CHARS


# --- differential privacy: releases, the ledger and the budget --------------------------------------


@dataclass(frozen=True)
class Group:
    """Cells released at one noise scale: ``scale = factor / ε`` per count, L1 sensitivity ``l1``.

    ``factor`` is the most one customer can move one cell (1 for a count, the clip for a clipped sum)
    and ``l1`` the most they can move the whole group's cells together.
    """

    factor: int
    l1: int


@dataclass
class Release:
    """What a page shows: noisy (or, with DP off, exact) values and the privacy accounting around them.

    ``status``: ``off`` (no DP: exact values), ``cached`` (this data version was released before:
    nothing spent now), ``fresh`` (released now, ``epsilon`` spent), ``stale`` (budget used up: the
    last figures released for this subject, from ``released_at``) or ``exhausted`` (budget used up
    and nothing released before: no figures).
    """

    status: str
    values: dict[str, int] | None
    epsilon: float = 0.0
    cell_epsilon: float | None = None
    released_at: datetime | None = None
    spent: float = 0.0
    budget: float = 0.0
    window_days: int = 0
    accuracy: float | None = None

    @property
    def dp(self) -> bool:
        return self.status != "off"

    @property
    def blocked(self) -> bool:
        return self.status in ("stale", "exhausted")


def query_subject(tree: Any) -> str:
    """A stable name for an audience query: the hash of its canonical JSON (same tree, same release)."""
    canonical = json.dumps(tree, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def noise_key(store: Store) -> bytes:
    """The store's secret noise key, generated once (a conditional UPDATE, so racing requests agree)."""
    cfg = get_settings(store)
    if not cfg.noise_key:
        with store_scope(store):
            StoreAnalyticsSettings.objects.filter(pk=cfg.pk, noise_key="").update(noise_key=secrets.token_hex(32))
            cfg.refresh_from_db(fields=["noise_key"])
    return bytes.fromhex(cfg.noise_key)


def data_version(store: Store, cfg: StoreAnalyticsSettings) -> str:
    """A fingerprint of everything a segment figure is computed from, and of the noise settings.

    It changes when a profile run finishes, a profile is added or erased, a segment is created,
    rebuilt or edited, or ε or the revenue clip changes: then, and only then, new noise is drawn.
    """
    with store_scope(store):
        run = ProfileRun.objects.filter(status=JobStatus.SUCCEEDED).order_by("-pk").values_list("pk", flat=True).first()
        prof = CustomerProfile.objects.aggregate(n=Count("pk"), top=Max("pk"), at=Max("computed_at"))
        segs = list(Segment.objects.order_by("pk").values_list("pk", "updated_at"))
    parts = [
        f"run={run}",
        f"profiles={prof['n']}:{prof['top']}:{prof['at'].isoformat() if prof['at'] else ''}",
        "segments=" + ",".join(f"{pk}@{at.isoformat()}" for pk, at in segs),
        f"eps={cfg.dp_epsilon!r}",
        f"clip={cfg.revenue_clip!r}",
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def budget_spent(store: Store, cfg: StoreAnalyticsSettings) -> float:
    """ε spent by releases inside the store's budget window."""
    since = timezone.now() - timedelta(days=cfg.dp_budget_window_days)
    with store_scope(store):
        return float(DPRelease.objects.filter(created_at__gte=since).aggregate(e=Sum("epsilon"))["e"] or 0.0)


def release_epsilon(cell_epsilon: float, groups: Mapping[str, Group]) -> float:
    """ε of releasing these groups once, from OpenDP's privacy map of each group's measurement."""
    return sum(privacy.epsilon_spent(g.factor / cell_epsilon, g.l1) for g in groups.values())


def release_counts(
    store: Store,
    kind: str,
    subject: str,
    compute: Callable[[], dict[str, int]],
    groups: Mapping[str, Group],
    *,
    user: Any = None,
) -> Release:
    """The figures a page may show for ``(kind, subject)``; ``compute`` gives the true integer cells.

    A cell belongs to the group named by its key's prefix (``"size:12"`` is in ``"size"``). With DP
    off the true values come back. With DP on, a release already recorded for this data version is
    shown again (no spend); otherwise, if the budget allows, each cell gets its seeded discrete
    Laplace noise and the release is recorded; if not, the last release of this subject is shown.
    """
    cfg = get_settings(store)
    if cfg.dp_epsilon is None:
        return Release(status="off", values=compute())
    cell_eps = privacy.check_epsilon(cfg.dp_epsilon)
    cost = release_epsilon(cell_eps, groups)
    version = data_version(store, cfg)
    key = noise_key(store)
    base = {
        "cell_epsilon": cell_eps,
        "budget": cfg.dp_budget,
        "window_days": cfg.dp_budget_window_days,
        "accuracy": privacy.accuracy(1.0 / cell_eps),
    }
    with store_scope(store), transaction.atomic():
        # One release at a time per store: the lock makes "check the budget, then spend" atomic.
        StoreAnalyticsSettings.objects.select_for_update().filter(pk=cfg.pk).first()
        mine = DPRelease.objects.filter(kind=kind, subject=subject)
        found = mine.filter(data_version=version).first()
        if found is not None:
            spent = budget_spent(store, cfg)
            return Release("cached", found.values, found.epsilon, released_at=found.created_at, spent=spent, **base)
        spent = budget_spent(store, cfg)
        if spent + cost > cfg.dp_budget + 1e-12:
            last = mine.first()
            if last is None:
                return Release("exhausted", None, cost, spent=spent, **base)
            return Release("stale", last.values, cost, released_at=last.created_at, spent=spent, **base)
        true = compute()
        unknown = sorted({c.split(":", 1)[0] for c in true} - set(groups))
        if unknown:
            raise ValueError(f"cells without a noise group: {', '.join(unknown)}")
        values: dict[str, int] = {}
        for prefix, group in groups.items():
            cells = {c: v for c, v in true.items() if c.split(":", 1)[0] == prefix}
            # The seed names the release (kind, subject) as well as the data version and the cell:
            # two different questions never share a draw, or one answer would give the other's noise.
            seed_version = f"{version}|{kind}|{subject}"
            values.update(privacy.noisy_counts(cells, group.factor / cell_eps, key=key, version=seed_version))
        row = DPRelease.objects.create(
            store=store,
            kind=kind,
            subject=subject,
            data_version=version,
            epsilon=cost,
            cell_epsilon=cell_eps,
            cells=len(values),
            values=values,
            user=user if getattr(user, "is_authenticated", False) else None,
        )
    return Release("fresh", values, cost, released_at=row.created_at, spent=spent + cost, **base)
