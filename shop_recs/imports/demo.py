"""A synthetic but believable shop: catalog, customers with hidden tastes, and ~6 months of events.

Everything is drawn from one ``numpy.random.Generator(PCG64(seed))`` in a fixed order, so the same
seed and the same end date always give the same data. Event generation is vectorised over sessions
and views (no per-event Python loop except building the final row tuples).

The generative story, per session:

1. A customer is drawn in proportion to a lognormal activity level (7 % of sessions are anonymous).
2. The day follows weekly and yearly seasonality plus a gentle growth trend; the hour a diurnal curve.
3. The session's intent category is one of the customer's 2-3 favourite categories with probability
   ``P_FAVOURITE`` (else a category by seasonal popularity: garden in summer, toys before Christmas).
4. ~30 % of sessions begin with a search whose query is made of words from the first product viewed.
5. Views: 1 + Poisson(3.2) products, each from the intent category (85 %) or anywhere; among a few
   popularity-drawn candidates the customer picks by hidden taste: favourite brands, and a price close
   to their price band relative to the category's typical price.
6. Funnel: a view goes to the cart with a probability that grows with taste affinity (~15 % overall);
   a session checks out with 55 %, buying most of its cart under one order id; an abandoned cart item
   is removed 35 % of the time; 18 % of purchases are rated 3-20 days later (better fit, better rating).

The hidden tastes are saved to ``VAR_DIR/demo/<slug>_tastes.json`` so a later traffic simulator can
replay the same people (see ``load_tastes``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from shop_recs.stores.models import Store

__all__ = ["DemoConfig", "SeedResult", "seed_demo_store", "tastes_path", "load_tastes", "store_has_data"]

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

# top level -> (brands, {subcategory: (typical price, modifiers, nouns)})
CATALOG: dict[str, tuple[list[str], dict[str, tuple[float, list[str], list[str]]]]] = {
    "Electronics": (
        ["Aurora", "Voltix", "Sonara", "Nimbus", "Kestrel", "Lumio"],
        {
            "Headphones": (
                89,
                ["Wireless Noise-Cancelling", "Over-Ear Studio", "True Wireless", "Sport Bluetooth", "Open-Back"],
                ["Headphones", "Earbuds"],
            ),
            "Speakers": (
                79,
                ["Portable Bluetooth", "Smart", "Waterproof", "Bookshelf", "Party"],
                ["Speaker", "Soundbar"],
            ),
            "Smartwatches": (
                199,
                ["Fitness", "GPS", "Classic", "Hybrid", "Kids"],
                ["Smartwatch", "Fitness Tracker"],
            ),
            "Cameras": (449, ["Mirrorless", "Compact", "Action", "Instant", "4K Vlogging"], ["Camera", "Camera Kit"]),
            "Chargers & Cables": (
                19,
                ["Fast USB-C", "Wireless", "Braided", "Travel", "Magnetic"],
                ["Charger", "Cable", "Power Bank"],
            ),
        },
    ),
    "Home & Kitchen": (
        ["Hearthwood", "Casa Nova", "Nordhem", "Copperleaf", "Maison Blanc", "Ember"],
        {
            "Cookware": (
                59,
                ["Non-Stick", "Cast Iron", "Stainless Steel", "Ceramic", "Copper"],
                ["Frying Pan", "Saucepan", "Dutch Oven"],
            ),
            "Coffee & Tea": (
                49,
                ["Pour-Over", "Espresso", "French Press", "Electric", "Glass"],
                ["Coffee Maker", "Kettle", "Grinder"],
            ),
            "Bedding": (
                69,
                ["Linen", "Organic Cotton", "Bamboo", "Down-Alternative", "Waffle"],
                ["Duvet Cover", "Sheet Set", "Pillow"],
            ),
            "Lighting": (
                45,
                ["Dimmable LED", "Rattan", "Industrial", "Smart", "Brass"],
                ["Table Lamp", "Floor Lamp", "Pendant Light"],
            ),
            "Storage": (25, ["Stackable", "Bamboo", "Woven", "Vacuum", "Glass"], ["Storage Box", "Basket", "Jar Set"]),
        },
    ),
    "Fashion": (
        ["Marlowe", "Urban Fox", "Stitch & Co", "Velora", "Northline", "Ashby"],
        {
            "Women's Dresses": (59, ["Floral Midi", "Linen Wrap", "Satin Slip", "Knitted", "Summer Maxi"], ["Dress"]),
            "Men's Jackets": (
                119,
                ["Waxed Cotton", "Quilted", "Denim", "Waterproof", "Wool-Blend"],
                ["Jacket", "Parka"],
            ),
            "Sneakers": (89, ["Classic Leather", "Running", "High-Top", "Canvas", "Retro"], ["Sneakers", "Trainers"]),
            "Bags": (
                79,
                ["Leather", "Canvas", "Recycled Nylon", "Mini", "Weekend"],
                ["Tote Bag", "Backpack", "Crossbody Bag"],
            ),
            "Accessories": (
                29,
                ["Silk", "Wool", "Leather", "Polarised", "Woven"],
                ["Scarf", "Belt", "Sunglasses", "Beanie"],
            ),
        },
    ),
    "Beauty": (
        ["Lumière", "Verdant", "Pure Skin", "Rosé Atelier", "Oak & Salt", "Mira"],
        {
            "Skincare": (
                29,
                ["Hydrating", "Vitamin C", "Retinol", "Gentle", "Brightening"],
                ["Serum", "Moisturiser", "Cleanser"],
            ),
            "Makeup": (
                19,
                ["Long-Wear", "Matte", "Dewy", "Waterproof", "Tinted"],
                ["Lipstick", "Mascara", "Foundation"],
            ),
            "Fragrance": (
                69,
                ["Amber", "Citrus", "Woody", "Floral", "Fresh Aquatic"],
                ["Eau de Parfum", "Eau de Toilette"],
            ),
            "Hair Care": (
                17,
                ["Repairing", "Volumising", "Curl-Defining", "Sulphate-Free", "Argan Oil"],
                ["Shampoo", "Conditioner", "Hair Mask"],
            ),
            "Men's Grooming": (
                24,
                ["Cedar", "Sensitive", "Precision", "Charcoal", "Classic"],
                ["Beard Oil", "Trimmer", "Shaving Kit"],
            ),
        },
    ),
    "Sports & Outdoors": (
        ["Summit", "Trailhead", "Pacer", "Altura", "Riptide", "Forge"],
        {
            "Running": (
                59,
                ["Lightweight", "Reflective", "Breathable", "Thermal", "Trail"],
                ["Running Shoes", "Running Jacket", "Shorts"],
            ),
            "Yoga & Fitness": (
                35,
                ["Non-Slip", "Adjustable", "Eco", "Extra-Thick", "Resistance"],
                ["Yoga Mat", "Dumbbell Set", "Bands"],
            ),
            "Camping": (
                89,
                ["Ultralight", "4-Season", "Compact", "Insulated", "Family"],
                ["Tent", "Sleeping Bag", "Camping Stove"],
            ),
            "Cycling": (
                69,
                ["Aero", "LED", "Padded", "Carbon", "Folding"],
                ["Bike Helmet", "Bike Light", "Cycling Gloves"],
            ),
            "Team Sports": (
                29,
                ["Match", "Training", "Pro", "Junior", "Indoor"],
                ["Football", "Basketball", "Shin Guards"],
            ),
        },
    ),
    "Books": (
        ["Penwood Press", "Harbor House", "Bluebell Books", "Meridian", "Quill & Ink", "Northstar"],
        {
            "Fiction": (
                14,
                ["The Silent", "Midnight", "The Last", "Winter", "A Distant"],
                ["Harbor", "Orchard", "Kingdom", "Letters"],
            ),
            "Cookbooks": (
                24,
                ["Simple", "Plant-Based", "Italian", "Weeknight", "Baking"],
                ["Kitchen", "Suppers", "Classics"],
            ),
            "Science": (
                19,
                ["The Hidden", "A Brief History of", "The Curious", "Inside the", "Secrets of the"],
                ["Universe", "Brain", "Ocean", "Atom"],
            ),
            "Children's Books": (
                9,
                ["The Little", "Goodnight", "The Brave", "Sleepy", "The Clever"],
                ["Fox", "Dragon", "Moon", "Bear"],
            ),
            "Business": (
                21,
                ["The Lean", "Deep", "The Focused", "Radical", "The Patient"],
                ["Leader", "Startup", "Work", "Investor"],
            ),
        },
    ),
    "Toys & Games": (
        ["Brickly", "Tumble", "Wonderbox", "Pip & Pals", "Gamewright", "Kite"],
        {
            "Board Games": (34, ["Strategy", "Family", "Cooperative", "Party", "Classic"], ["Board Game", "Card Game"]),
            "Building Sets": (
                49,
                ["City", "Space", "Castle", "Creative", "Vehicle"],
                ["Building Set", "Construction Kit"],
            ),
            "Puzzles": (19, ["1000-Piece", "Wooden", "3D", "Landscape", "Kids"], ["Jigsaw Puzzle", "Puzzle Box"]),
            "Dolls & Figures": (
                24,
                ["Collectible", "Fashion", "Action", "Soft", "Wooden"],
                ["Doll", "Figure Set", "Plush Toy"],
            ),
            "Outdoor Play": (
                59,
                ["Inflatable", "Foldable", "Junior", "Adventure", "Water"],
                ["Trampoline", "Scooter", "Play Tent"],
            ),
        },
    ),
    "Garden & DIY": (
        ["Greenfield", "Ironclad", "Bloom & Root", "Toolcraft", "Patio Co", "Verde"],
        {
            "Power Tools": (
                119,
                ["Cordless", "Brushless", "Compact", "Heavy-Duty", "18V"],
                ["Drill", "Jigsaw", "Sander"],
            ),
            "Hand Tools": (
                25,
                ["Forged", "Ergonomic", "Precision", "Stainless", "Multi"],
                ["Hammer", "Screwdriver Set", "Pliers"],
            ),
            "Plants & Seeds": (
                12,
                ["Heirloom", "Organic", "Wildflower", "Herb", "Dwarf"],
                ["Seed Kit", "Bulbs", "Starter Plant"],
            ),
            "Garden Furniture": (
                179,
                ["Teak", "Rattan", "Folding", "Weatherproof", "Acacia"],
                ["Bench", "Lounge Chair", "Dining Set"],
            ),
            "Paint": (29, ["Matt Emulsion", "Satin", "Exterior", "Chalk", "Eggshell"], ["Paint", "Wood Stain"]),
        },
    ),
}
BOOK_PRAISE = ("gripping", "warm", "clever", "useful", "beautiful")
PRODUCT_PERKS = ("a two-year warranty", "free returns", "recycled packaging", "a premium finish", "easy care")
VARIANTS = ["Pro", "Mini", "II", "Plus", "Lite", "Max", "Air", "Classic", "Edition", "S"]
COLOURS = ["Black", "White", "Sage", "Navy", "Sand", "Terracotta", "Slate", "Blush", "Olive", "Charcoal"]
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


@dataclass(frozen=True)
class DemoConfig:
    """Size and randomness of the generated store."""

    seed: int = 42
    customers: int = 5_000
    products: int = 2_000
    events: int = 300_000
    days: int = 182
    end_date: date | None = None  # default: today (UTC); the last day with events is the day before


@dataclass
class SeedResult:
    """What ``seed_demo_store`` wrote, and how long each stage took."""

    categories: int = 0
    products: int = 0
    customers: int = 0
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    orders: int = 0
    tastes_file: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


# --- Storage of the hidden tastes --------------------------------------------------------------


def tastes_path(slug: str) -> Path:
    return Path(settings.VAR_DIR) / "demo" / f"{slug}_tastes.json"


def load_tastes(slug: str) -> dict[str, Any]:
    """The hidden tastes saved by ``seed_demo_store`` (see the module docstring for the format)."""
    return json.loads(tastes_path(slug).read_text())


def store_has_data(store: Store) -> bool:
    from shop_recs.activity.models import Customer, Event
    from shop_recs.catalog.models import Product

    return any(model.all_stores.filter(store=store).exists() for model in (Product, Customer, Event))


def clear_store_data(store: Store) -> None:
    """Delete the store's events, customers, products and categories (for ``seed_demo --reset``)."""
    from shop_recs.activity.models import Customer, Event
    from shop_recs.catalog.models import Category, Product

    for model in (Event, Customer, Product, Category):
        model.all_stores.filter(store=store).delete()


# --- Generation ------------------------------------------------------------------------------


@dataclass
class _Catalog:
    paths: list[str]
    top_of_cat: np.ndarray  # category -> top-level index
    base_price: np.ndarray  # category -> typical price
    brands: list[str]  # global brand list
    cat: np.ndarray  # product -> category
    brand: np.ndarray  # product -> global brand index
    price: np.ndarray
    pop: np.ndarray
    rows: list[dict]
    queries: list[list[str]]


def _round_price(x: np.ndarray) -> np.ndarray:
    # Shop-like prices: x.99 above 10, x.49/x.99 below.
    whole = np.floor(x)
    cents = np.where(x < 10, np.where(x - whole < 0.5, 0.49, 0.99), 0.99)
    return np.maximum(whole + cents, 0.99)


def _make_catalog(rng: np.random.Generator, n_products: int, currency: str) -> _Catalog:
    paths, top_of_cat, base, subs = [], [], [], []
    brands: list[str] = []
    brand_offset = []
    for t, (top, (top_brands, top_subs)) in enumerate(CATALOG.items()):
        brand_offset.append(len(brands))
        brands.extend(top_brands)
        for sub, spec in top_subs.items():
            paths.append(f"{top} > {sub}")
            top_of_cat.append(t)
            base.append(spec[0])
            subs.append((top, sub, spec, t))
    n_cat = len(paths)
    top_of_cat_a = np.array(top_of_cat)
    base_a = np.array(base, dtype=float)
    brand_tier = rng.lognormal(0.0, 0.25, len(brands))  # some brands are premium, some cheap

    # Products per category: a Dirichlet share, at least 2 each.
    share = rng.dirichlet(np.full(n_cat, 6.0))
    per_cat = np.maximum(2, np.floor(share * n_products).astype(int))
    while per_cat.sum() > n_products and per_cat.max() > 2:
        per_cat[np.argmax(per_cat)] -= 1
    while per_cat.sum() < n_products:
        per_cat[rng.integers(n_cat)] += 1

    cat = np.repeat(np.arange(n_cat), per_cat)
    n = len(cat)
    brand = np.empty(n, dtype=int)
    price = np.empty(n)
    rows: list[dict] = []
    queries: list[list[str]] = []
    start = 0
    for c, (top, sub, (typical, mods, nouns), t) in enumerate(subs):
        k = per_cat[c]
        n_brands = len(CATALOG[top][0])
        b_local = rng.integers(0, n_brands, k)
        m_idx = rng.integers(0, len(mods), k)
        n_idx = rng.integers(0, len(nouns), k)
        extra = rng.integers(0, len(VARIANTS), k)
        colour = rng.integers(0, len(COLOURS), k)
        mult = rng.lognormal(0.0, 0.4, k)
        seen: set[str] = set()
        for j in range(k):
            gb = brand_offset[t] + b_local[j]
            brand_name = brands[gb]
            mod, noun = mods[m_idx[j]], nouns[n_idx[j]]
            if top == "Books":
                title = f"{mod} {noun}"
            else:
                title = f"{brand_name} {mod} {noun}"
            if title in seen:
                title = f"{title} {VARIANTS[extra[j]]}"
            if title in seen:
                title = f"{title} ({COLOURS[colour[j]]})"
            n_try = 2
            while title in seen:
                title = f"{title.rsplit(' #', 1)[0]} #{n_try}"
                n_try += 1
            seen.add(title)
            p = _round_price(np.array([typical * mult[j] * brand_tier[gb]]))[0]
            brand[start + j] = gb
            price[start + j] = p
            if top == "Books":
                desc = (
                    f"{title}: a {sub.lower()} title from {brand_name}. "
                    f"Readers call it {BOOK_PRAISE[j % 5]} and hard to put down."
                )
            else:
                desc = (
                    f"The {title} is a {mod.lower()} {noun.lower()} from {brand_name}'s {sub.lower()} range. "
                    f"Designed for everyday use, with {PRODUCT_PERKS[j % 5]}."
                )
            tags = sorted({sub.lower(), noun.lower(), *mod.lower().replace("-", " ").split()[:2], brand_name.lower()})
            idx = start + j
            rows.append(
                {
                    "sku": f"DEMO-{idx + 1:05d}",
                    "title": title,
                    "description": desc,
                    "category": paths[c],
                    "brand": brand_name,
                    "tags": tags,
                    "price": f"{p:.2f}",
                    "currency": currency,
                    "image_url": "",
                    "is_active": True,
                    "in_stock": bool(rng.random() > 0.04),
                    "attributes": {"colour": COLOURS[colour[j]]} if top in ("Fashion", "Home & Kitchen") else {},
                }
            )
            last = mod.split()[-1].lower()
            queries.append(
                [noun.lower(), f"{last} {noun.lower()}", f"{brand_name.lower()} {noun.lower()}", sub.lower()]
            )
        start += k
    pop = rng.lognormal(0.0, 1.0, n)
    return _Catalog(paths, top_of_cat_a, base_a, brands, cat, brand, price, pop, rows, queries)


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


def seed_demo_store(store: Store, cfg: DemoConfig, *, progress=None) -> SeedResult:
    """Generate and write the demo data for ``store`` (which must have no catalog, customers or events)."""
    from shop_recs.activity.ingest import product_ids_by_sku, write_events
    from shop_recs.activity.models import Customer
    from shop_recs.catalog.services import upsert_products

    result = SeedResult()
    t0 = time.perf_counter()
    end = cfg.end_date or datetime.now(UTC).date()
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    cat = _make_catalog(rng, cfg.products, store.currency or "USD")
    tastes = _make_tastes(rng, cfg.customers, cat)
    ev = _generate_events(rng, cfg, cat, tastes, end)
    result.seconds["generate"] = round(time.perf_counter() - t0, 2)

    t1 = time.perf_counter()
    with transaction.atomic():
        for i in range(0, len(cat.rows), 1_000):
            upsert_products(store, cat.rows[i : i + 1_000])
        skus = [r["sku"] for r in cat.rows]
        sku_pk = product_ids_by_sku(store.id, skus)
        prod_pk = np.array([sku_pk[s] for s in skus], dtype=np.int64)

        # Signup is never after the customer's first session.
        first_day = np.full(cfg.customers, cfg.days, dtype=float)
        sess_day_of_event = np.floor((ev["ts"] - ev["day0"]) / 86400.0)
        known = ~ev["anon"][ev["sess"]]
        np.minimum.at(first_day, ev["cust"][ev["sess"][known]], sess_day_of_event[known])
        signup_days_before_end = np.maximum(tastes.signup_offset_days, cfg.days - first_day)
        customers = [
            Customer(
                store=store,
                external_id=f"C{i + 1:05d}",
                country=COUNTRIES[0][tastes.country[i]],
                age_band=AGE_BANDS[0][tastes.age[i]],
                gender=GENDERS[0][tastes.gender[i]],
                signup_date=end - timedelta(days=int(signup_days_before_end[i])),
            )
            for i in range(cfg.customers)
        ]
        Customer.all_stores.bulk_create(customers, batch_size=2_000)
        cust_pk_map = dict(Customer.all_stores.filter(store=store).values_list("external_id", "id"))
        cust_pk = np.array([cust_pk_map[f"C{i + 1:05d}"] for i in range(cfg.customers)], dtype=np.int64)
        result.seconds["catalog_and_customers"] = round(time.perf_counter() - t1, 2)

        t2 = time.perf_counter()
        sess = ev["sess"]
        is_anon = ev["anon"][sess]
        e_cust = np.where(is_anon, -1, cust_pk[ev["cust"][sess]])
        session_names = np.array([f"demo-{cfg.seed}-{s:07d}" for s in range(len(ev["anon"]))], dtype=object)
        e_session = session_names[sess]
        types = np.array(TYPE_NAMES, dtype=object)[ev["type"]]
        e_prod = np.where(ev["prod"] >= 0, prod_pk[np.maximum(ev["prod"], 0)], -1)
        order_names = np.where(ev["type"] == 4, np.char.add("D", sess.astype(str)), "")
        queries = ev["queries"]
        stamps = [datetime.fromtimestamp(t, tz=UTC) for t in ev["ts"].tolist()]
        value = ev["value"]
        rows = (
            (
                None if c < 0 else c,
                s,
                t,
                None if p < 0 else p,
                None if v != v else v,
                q if q > 0 else None,
                o,
                queries[qi] if qi >= 0 else "",
                ts,
                None,
            )
            for c, s, t, p, v, q, o, qi, ts in zip(
                e_cust.tolist(),
                e_session.tolist(),
                types.tolist(),
                e_prod.tolist(),
                value.tolist(),
                ev["qty"].tolist(),
                order_names.tolist(),
                ev["query_idx"].tolist(),
                stamps,
                strict=True,
            )
        )
        batch: list[tuple] = []
        written = 0
        for row in rows:
            batch.append(row)
            if len(batch) >= 50_000:
                written += write_events(store.id, batch)
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            written += write_events(store.id, batch)
            if progress:
                progress(len(batch))
        result.seconds["write_events"] = round(time.perf_counter() - t2, 2)

    result.categories = len({r["category"] for r in cat.rows}) + len(CATALOG)
    result.products = len(cat.rows)
    result.customers = cfg.customers
    result.events = written
    result.events_by_type = {TYPE_NAMES[k]: int((ev["type"] == k).sum()) for k in range(len(TYPE_NAMES))}
    result.sessions = int(len(np.unique(sess)))
    result.orders = int(len(np.unique(sess[ev["type"] == 4])))
    result.tastes_file = str(_save_tastes(store, cfg, end, cat, tastes))
    result.seconds["total"] = round(time.perf_counter() - t0, 2)
    return result


def _save_tastes(store: Store, cfg: DemoConfig, end: date, cat: _Catalog, tastes: _Tastes) -> Path:
    path = tastes_path(store.slug)
    path.parent.mkdir(parents=True, exist_ok=True)
    customers = {}
    for i in range(len(tastes.activity)):
        k = 2 if tastes.fav_weights[i, 2] == 0 else 3
        customers[f"C{i + 1:05d}"] = {
            "favourite_categories": [cat.paths[c] for c in tastes.fav_cats[i, :k]],
            "category_weights": [float(w) for w in tastes.fav_weights[i, :k]],
            "favourite_brands": [cat.brands[b] for b in tastes.fav_brands[i]],
            "price_band": PRICE_BANDS[0][tastes.band[i]],
            "price_multiplier": float(tastes.price_mult[i]),
            "activity": round(float(tastes.activity[i]), 4),
        }
    payload = {
        "store": store.slug,
        "config": {**asdict(cfg), "end_date": end.isoformat()},
        "model": {
            "p_favourite_category": P_FAVOURITE,
            "p_stay_in_category": P_STAY_IN_CATEGORY,
            "p_anonymous_session": P_ANONYMOUS,
            "p_search": P_SEARCH,
            "cart_base": CART_BASE,
            "p_checkout": P_CHECKOUT,
            "p_buy_in_checkout": P_BUY_IN_CHECKOUT,
            "p_remove_abandoned": P_REMOVE_ABANDONED,
            "p_rate": P_RATE,
            "price_sigma": PRICE_SIGMA,
            "affinity": "1.5*favourite_brand + 0.7*favourite_category - (log(price/category_typical) "
            "- log(price_multiplier))^2 / (2*price_sigma^2)",
            "price_bands": dict(zip(PRICE_BANDS[0], PRICE_BANDS[2], strict=True)),
        },
        "categories": {p: float(b) for p, b in zip(cat.paths, cat.base_price, strict=True)},
        "customers": customers,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False))
    tmp.replace(path)
    return path
