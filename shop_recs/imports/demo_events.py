"""The demo store's people and activity: hidden tastes, seasonality and the vectorised event generator
(see :mod:`.demo` for the generative story)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from shop_recs.imports.demo_catalog import CATALOG, _Catalog

if TYPE_CHECKING:  # demo imports this module: the config class is only needed for annotations
    from shop_recs.imports.demo import DemoConfig

P_FAVOURITE = 0.85  # share of known customers' sessions that start in a favourite category
P_STAY_IN_CATEGORY = 0.85  # share of views that stay in the session's intent category
P_ANONYMOUS = 0.07
P_SEARCH = 0.30
P_CHECKOUT = 0.55
P_BUY_IN_CHECKOUT = 0.85
P_REMOVE_ABANDONED = 0.35
P_RATE = 0.18
CART_BASE = 0.055
CANDIDATES = 6
PRICE_SIGMA = 0.35

COUNTRIES = (
    [
        "United States",
        "United Kingdom",
        "Germany",
        "France",
        "Canada",
        "Netherlands",
        "Spain",
        "Italy",
        "Australia",
        "Sweden",
    ],
    [0.30, 0.18, 0.12, 0.09, 0.07, 0.06, 0.05, 0.05, 0.05, 0.03],
)
AGE_BANDS = (["18-24", "25-34", "35-44", "45-54", "55-64", "65+"], [0.14, 0.27, 0.23, 0.17, 0.12, 0.07])
GENDERS = (["female", "male", "other", ""], [0.50, 0.43, 0.02, 0.05])
PRICE_BANDS = (["budget", "mid", "premium"], [0.35, 0.45, 0.20], [0.65, 1.0, 1.6])
WEEKDAY_WEIGHT = np.array([1.00, 0.97, 0.96, 0.98, 1.02, 1.12, 1.18])  # Monday .. Sunday
HOUR_WEIGHT = np.array(
    [0.6, 0.4, 0.25, 0.2, 0.2, 0.3, 0.6, 1.0, 1.3, 1.4, 1.4, 1.5,
     1.7, 1.6, 1.4, 1.4, 1.5, 1.7, 2.0, 2.4, 2.6, 2.3, 1.7, 1.1]
)  # fmt: skip


@dataclass
class _Tastes:
    fav_cats: np.ndarray  # (n_c, 3)
    fav_weights: np.ndarray  # (n_c, 3)
    fav_brands: np.ndarray  # (n_c, 2)
    band: np.ndarray  # (n_c,) index into PRICE_BANDS
    price_mult: np.ndarray
    activity: np.ndarray
    country: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    signup_offset_days: np.ndarray


def _make_tastes(rng: np.random.Generator, n_c: int, cat: _Catalog) -> _Tastes:
    n_cat = len(cat.paths)
    n_top = int(cat.top_of_cat.max()) + 1
    top_pop = rng.dirichlet(np.full(n_top, 4.0))
    cat_pop = rng.dirichlet(np.full(n_cat, 3.0))
    primary_top = rng.choice(n_top, n_c, p=top_pop)
    fav = np.empty((n_c, 3), dtype=int)
    # First favourite: in the primary top level; the others: same top level 60 %, anywhere 40 %.
    cats_of_top = [np.flatnonzero(cat.top_of_cat == t) for t in range(n_top)]
    for slot in range(3):
        same = (rng.random(n_c) < 0.6) | (slot == 0)
        pick_local = rng.integers(0, 5, n_c)
        local = np.array(
            [cats_of_top[t][i % len(cats_of_top[t])] for t, i in zip(primary_top, pick_local, strict=True)]
        )
        anywhere = rng.choice(n_cat, n_c, p=cat_pop)
        fav[:, slot] = np.where(same, local, anywhere)
    # Distinct favourites: a slot that repeats an earlier one moves on to the next category.
    for slot in (1, 2):
        for _ in range(3):
            clash = (fav[:, slot, None] == fav[:, :slot]).any(axis=1)
            fav[:, slot] = np.where(clash, (fav[:, slot] + 1) % n_cat, fav[:, slot])
    n_favs = np.where(rng.random(n_c) < 0.5, 2, 3)
    weights = np.where(n_favs[:, None] == 2, np.array([0.6, 0.4, 0.0]), np.array([0.5, 0.3, 0.2]))
    # Favourite brands: two brands of the first two favourite categories' top levels.
    brands_per_top = len(cat.brands) // n_top
    fb = np.stack(
        [
            cat.top_of_cat[fav[:, 0]] * brands_per_top + rng.integers(0, brands_per_top, n_c),
            cat.top_of_cat[fav[:, 1]] * brands_per_top + rng.integers(0, brands_per_top, n_c),
        ],
        axis=1,
    )
    band = rng.choice(3, n_c, p=PRICE_BANDS[1])
    price_mult = np.array(PRICE_BANDS[2])[band]
    activity = rng.lognormal(0.0, 0.9, n_c)
    country = rng.choice(len(COUNTRIES[0]), n_c, p=COUNTRIES[1])
    age = rng.choice(len(AGE_BANDS[0]), n_c, p=AGE_BANDS[1])
    gender = rng.choice(len(GENDERS[0]), n_c, p=GENDERS[1])
    signup = rng.integers(0, 730, n_c)  # days before the end date
    return _Tastes(fav, weights, fb, band, price_mult, activity, country, age, gender, signup)


def _day_weights(days: list[date], n_cat: int, cat: _Catalog) -> tuple[np.ndarray, np.ndarray]:
    """Per-day traffic weight and per-day category weights (seasonal categories)."""
    doy = np.array([d.timetuple().tm_yday for d in days], dtype=float)
    weekday = np.array([d.weekday() for d in days])
    yearly = 1.0 + 0.15 * np.cos(2 * np.pi * (doy - 355) / 365.25)
    # Black Friday to Christmas bump, centred on 5 December.
    dist = np.minimum(np.abs(doy - 339), 365.25 - np.abs(doy - 339))
    yearly += 0.6 * np.exp(-0.5 * (dist / 10.0) ** 2)
    trend = np.linspace(0.9, 1.1, len(days))
    traffic = WEEKDAY_WEIGHT[weekday] * yearly * trend
    top_names = list(CATALOG)
    summer = 1.0 + 0.8 * np.exp(-0.5 * ((doy - 170) / 40.0) ** 2)  # garden season
    christmas = 1.0 + 1.5 * np.exp(-0.5 * (dist / 14.0) ** 2)  # toys before Christmas
    cat_w = np.ones((len(days), n_cat))
    for c in range(n_cat):
        top = top_names[cat.top_of_cat[c]]
        if top == "Garden & DIY":
            cat_w[:, c] *= summer
        elif top in ("Toys & Games", "Books"):
            cat_w[:, c] *= christmas if top == "Toys & Games" else np.sqrt(christmas)
    return traffic / traffic.sum(), cat_w


def _sample_in_category(rng, cum, cat_base, cat_mass, cat_start, cat_end, cats, size_last):
    u = rng.random(cats.shape + (size_last,))
    target = cat_base[cats][..., None] + u * cat_mass[cats][..., None]
    idx = np.searchsorted(cum, target, side="right")
    return np.clip(idx, cat_start[cats][..., None], cat_end[cats][..., None] - 1)


# Long on purpose: one vectorised pipeline whose random draws must stay in this exact order (same seed,
# same data); the stages share many arrays, and the section comments mark sessions, views, funnel, assembly.
def _generate_events(rng: np.random.Generator, cfg: DemoConfig, cat: _Catalog, tastes: _Tastes, end: date):
    n_c = len(tastes.activity)
    n_cat = len(cat.paths)
    n_p = len(cat.cat)
    days = [end - timedelta(days=cfg.days - i) for i in range(cfg.days)]
    traffic, cat_day_w = _day_weights(days, n_cat, cat)
    day0 = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC).timestamp()

    cum = np.cumsum(cat.pop)
    cat_start = np.searchsorted(cat.cat, np.arange(n_cat), side="left")
    cat_end = np.searchsorted(cat.cat, np.arange(n_cat), side="right")
    cat_base = np.where(cat_start > 0, cum[np.maximum(cat_start - 1, 0)], 0.0)
    cat_mass = cum[cat_end - 1] - cat_base
    cat_global_pop = cat_mass / cat_mass.sum()

    # ~5.6 events per session on average with the rates above; draw 25 % extra and trim.
    n_sessions = int(cfg.events / 5.6 * 1.25) + 10
    act = tastes.activity / tastes.activity.sum()
    sess_cust = rng.choice(n_c, n_sessions, p=act)
    anon = rng.random(n_sessions) < P_ANONYMOUS
    sess_day = rng.choice(cfg.days, n_sessions, p=traffic)
    sess_hour = rng.choice(24, n_sessions, p=HOUR_WEIGHT / HOUR_WEIGHT.sum())
    sess_start = day0 + sess_day * 86400.0 + sess_hour * 3600.0 + rng.random(n_sessions) * 3600.0

    # Intent category: a favourite (by weight) or a seasonal-popularity draw.
    slot_u = rng.random(n_sessions)
    w = tastes.fav_weights[sess_cust]
    slot = (slot_u[:, None] > np.cumsum(w, axis=1)).sum(axis=1).clip(0, 2)
    fav_cat = tastes.fav_cats[sess_cust, slot]
    season = cat_day_w[sess_day] * cat_global_pop[None, :]
    season_cum = np.cumsum(season, axis=1)
    u = rng.random(n_sessions) * season_cum[:, -1]
    global_cat = (season_cum < u[:, None]).sum(axis=1).clip(0, n_cat - 1)
    use_fav = (rng.random(n_sessions) < P_FAVOURITE) & ~anon
    intent = np.where(use_fav, fav_cat, global_cat)

    n_views = 1 + rng.poisson(3.2, n_sessions)
    has_search = rng.random(n_sessions) < P_SEARCH

    # Views: candidates from the intent category (or anywhere), picked by hidden taste.
    v_sess = np.repeat(np.arange(n_sessions), n_views)
    n_v = len(v_sess)
    v_cust = sess_cust[v_sess]
    v_anon = anon[v_sess]
    stay = rng.random(n_v) < P_STAY_IN_CATEGORY
    in_cat = _sample_in_category(rng, cum, cat_base, cat_mass, cat_start, cat_end, intent[v_sess], CANDIDATES)
    anywhere = np.clip(np.searchsorted(cum, rng.random((n_v, CANDIDATES)) * cum[-1], side="right"), 0, n_p - 1)
    cand = np.where(stay[:, None], in_cat, anywhere)
    cand_cat = cat.cat[cand]
    brand_match = (cat.brand[cand] == tastes.fav_brands[v_cust, 0][:, None]) | (
        cat.brand[cand] == tastes.fav_brands[v_cust, 1][:, None]
    )
    rel_price = np.log(cat.price[cand] / cat.base_price[cand_cat]) - np.log(tastes.price_mult[v_cust])[:, None]
    price_term = -(rel_price**2) / (2 * PRICE_SIGMA**2)
    fav_match = (cand_cat[..., None] == tastes.fav_cats[v_cust][:, None, :]).any(axis=2)
    affinity = np.where(v_anon[:, None], 0.0, 1.5 * brand_match + price_term + 0.7 * fav_match)
    gumbel = -np.log(-np.log(rng.random((n_v, CANDIDATES))))
    pick = np.argmax(affinity + gumbel, axis=1)
    v_prod = cand[np.arange(n_v), pick]
    v_aff = affinity[np.arange(n_v), pick]

    gaps = 8.0 + rng.exponential(50.0, n_v)
    csum = np.cumsum(gaps)
    first = np.concatenate([[0], np.cumsum(n_views)[:-1]])
    before = np.concatenate([[0.0], csum])[first]
    search_lead = np.where(has_search, 15.0, 0.0)
    v_ts = sess_start[v_sess] + search_lead[v_sess] + (csum - before[v_sess])
    sess_end = v_ts[np.cumsum(n_views) - 1] + 30.0

    # Funnel.
    p_cart = np.clip(CART_BASE * np.exp(v_aff), 0.0, 0.6)
    carted = rng.random(n_v) < p_cart
    c_idx = np.flatnonzero(carted)
    c_sess = v_sess[c_idx]
    c_ts = v_ts[c_idx] + 5.0 + rng.random(len(c_idx)) * 40.0
    checkout = rng.random(n_sessions) < P_CHECKOUT
    bought = checkout[c_sess] & (rng.random(len(c_idx)) < P_BUY_IN_CHECKOUT)
    p_idx = c_idx[bought]
    p_sess = c_sess[bought]
    order_ts = sess_end + 30.0 + rng.random(n_sessions) * 200.0
    p_ts = order_ts[p_sess]
    qty = 1 + np.where(rng.random(len(p_idx)) < 0.12, rng.poisson(1.0, len(p_idx)), 0)
    discount = np.where(rng.random(len(p_idx)) < 0.1, 0.9, 1.0)
    p_value = np.round(cat.price[v_prod[p_idx]] * discount, 2)
    abandoned = ~bought & (rng.random(len(c_idx)) < P_REMOVE_ABANDONED)
    r_idx = c_idx[abandoned]
    r_ts = sess_end[c_sess[abandoned]] + rng.random(len(r_idx)) * 25.0
    rated = rng.random(len(p_idx)) < P_RATE
    rt_idx = p_idx[rated]
    rt_ts = p_ts[rated] + (3 + rng.random(len(rt_idx)) * 17) * 86400.0
    rt_val = np.clip(np.round(3.6 + 0.6 * v_aff[rt_idx] + rng.normal(0, 0.8, len(rt_idx))), 1, 5)

    # Searches: the query is made from the first viewed product's words.
    s_sess = np.flatnonzero(has_search)
    s_prod = v_prod[first[s_sess]]
    s_pick = rng.integers(0, 4, len(s_sess))
    s_query = [cat.queries[p][k] for p, k in zip(s_prod.tolist(), s_pick.tolist(), strict=True)]
    s_ts = sess_start[s_sess]

    # Assemble: (session, type code, product, value, qty, ts). Types: 0 view 1 search 2 cart 3 remove
    # 4 purchase 5 rating.
    parts = [
        (v_sess, 0, v_prod, np.full(n_v, np.nan), np.zeros(n_v, int), v_ts),
        (s_sess, 1, np.full(len(s_sess), -1), np.full(len(s_sess), np.nan), np.zeros(len(s_sess), int), s_ts),
        (c_sess, 2, v_prod[c_idx], np.ones(len(c_idx)), np.ones(len(c_idx), int), c_ts),
        (v_sess[r_idx], 3, v_prod[r_idx], np.ones(len(r_idx)), np.ones(len(r_idx), int), r_ts),
        (p_sess, 4, v_prod[p_idx], p_value, qty, p_ts),
        (v_sess[rt_idx], 5, v_prod[rt_idx], rt_val, np.zeros(len(rt_idx), int), rt_ts),
    ]
    e_sess = np.concatenate([p[0] for p in parts])
    e_type = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
    e_prod = np.concatenate([p[2] for p in parts])
    e_value = np.concatenate([p[3] for p in parts])
    e_qty = np.concatenate([p[4] for p in parts])
    e_ts = np.concatenate([p[5] for p in parts])
    e_query_idx = np.concatenate(
        [np.full(len(v_sess), -1), np.arange(len(s_sess)), np.full(len(e_sess) - len(v_sess) - len(s_sess), -1)]
    )

    # Keep whole sessions in a random order until the target count; cut the last one; drop
    # ratings that would fall after the end date.
    end_ts = day0 + cfg.days * 86400.0
    keep = e_ts < end_ts
    order = rng.permutation(n_sessions)
    rank = np.empty(n_sessions, dtype=int)
    rank[order] = np.arange(n_sessions)
    by = np.lexsort((e_ts, rank[e_sess]))
    by = by[keep[by]][: cfg.events]
    by = by[np.argsort(e_ts[by], kind="stable")]
    return {
        "sess": e_sess[by],
        "type": e_type[by],
        "prod": e_prod[by],
        "value": e_value[by],
        "qty": e_qty[by],
        "ts": e_ts[by],
        "query_idx": e_query_idx[by],
        "queries": s_query,
        "anon": anon,
        "cust": sess_cust,
        "day0": day0,
    }


TYPE_NAMES = ("view", "search", "add_to_cart", "remove_from_cart", "purchase", "rating")
