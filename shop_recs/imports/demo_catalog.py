"""The demo store's catalog: the category tree with brands, typical prices and title words, and
:func:`_make_catalog`, which draws products from it (see :mod:`.demo` for the whole story)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shop_recs.imports.placeholders import placeholder_url

#: The demo shop's storefront (an ``.example`` domain, reserved: it never resolves) for products' ``url``.
DEMO_SHOP_URL = "https://demo-shop.example"

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
    paths, top_of_cat, base, subs, brands, brand_offset = _category_layout()
    n_cat = len(paths)
    brand_tier = rng.lognormal(0.0, 0.25, len(brands))  # some brands are premium, some cheap
    per_cat = _products_per_category(rng, n_cat, n_products)

    images = [placeholder_url(path) for path in paths]
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
            title = _unique_title(top, brand_name, mod, noun, VARIANTS[extra[j]], COLOURS[colour[j]], seen)
            p = _round_price(np.array([typical * mult[j] * brand_tier[gb]]))[0]
            idx = start + j
            brand[idx] = gb
            price[idx] = p
            tags = sorted({sub.lower(), noun.lower(), *mod.lower().replace("-", " ").split()[:2], brand_name.lower()})
            rows.append(
                {
                    "sku": f"DEMO-{idx + 1:05d}",
                    "title": title,
                    "description": _description(top, sub, title, mod, noun, brand_name, j),
                    "category": paths[c],
                    "brand": brand_name,
                    "tags": tags,
                    "price": f"{p:.2f}",
                    "currency": currency,
                    # A placeholder served by this site (no network in the demo), one per category.
                    "image_url": images[c],
                    "url": f"{DEMO_SHOP_URL}/products/{idx + 1:05d}",
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
    top_of_cat_a, base_a = np.array(top_of_cat), np.array(base, dtype=float)
    return _Catalog(paths, top_of_cat_a, base_a, brands, cat, brand, price, pop, rows, queries)


def demo_categories() -> list[tuple[str, int]]:
    """Every demo category path with its top level's index (what the placeholder images are drawn for)."""
    paths, top_of_cat, *_ = _category_layout()
    return list(zip(paths, top_of_cat, strict=True))


def _category_layout() -> tuple[list[str], list[int], list[float], list[tuple], list[str], list[int]]:
    """(category paths, top level of each, typical price of each, (top, sub, spec, top index) per
    category, the global brand list, the first global brand index of each top level)."""
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
    return paths, top_of_cat, base, subs, brands, brand_offset


def _products_per_category(rng: np.random.Generator, n_cat: int, n_products: int) -> np.ndarray:
    """Products per category: a Dirichlet share, at least 2 each, ``n_products`` in all."""
    share = rng.dirichlet(np.full(n_cat, 6.0))
    per_cat = np.maximum(2, np.floor(share * n_products).astype(int))
    while per_cat.sum() > n_products and per_cat.max() > 2:
        per_cat[np.argmax(per_cat)] -= 1
    while per_cat.sum() < n_products:
        per_cat[rng.integers(n_cat)] += 1
    return per_cat


def _unique_title(top: str, brand_name: str, mod: str, noun: str, variant: str, colour: str, seen: set[str]) -> str:
    """A title not in ``seen`` (which it is added to): a variant, then a colour, then a number."""
    title = f"{mod} {noun}" if top == "Books" else f"{brand_name} {mod} {noun}"
    if title in seen:
        title = f"{title} {variant}"
    if title in seen:
        title = f"{title} ({colour})"
    n_try = 2
    while title in seen:
        title = f"{title.rsplit(' #', 1)[0]} #{n_try}"
        n_try += 1
    seen.add(title)
    return title


def _description(top: str, sub: str, title: str, mod: str, noun: str, brand_name: str, j: int) -> str:
    if top == "Books":
        return (
            f"{title}: a {sub.lower()} title from {brand_name}. "
            f"Readers call it {BOOK_PRAISE[j % 5]} and hard to put down."
        )
    return (
        f"The {title} is a {mod.lower()} {noun.lower()} from {brand_name}'s {sub.lower()} range. "
        f"Designed for everyday use, with {PRODUCT_PERKS[j % 5]}."
    )
