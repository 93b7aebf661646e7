"""The merchant/analyst dashboard: overview, catalog, customers, settings.

Every store page goes through ``store_view``: login, membership (404 for non-members) and an active
store scope, so the scoped managers below only ever see the current store's rows.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.apps import apps as django_apps
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from shop_recs.activity import erasure
from shop_recs.activity.models import Customer, ErasureRecord, Event, EventType
from shop_recs.catalog.models import Category, Product
from shop_recs.dashboard import charts, customer_panels, overview_snapshots, selectors
from shop_recs.dashboard.forms import AddMemberForm, ApiKeyForm, CatalogFilterForm, CustomerFilterForm, RoleForm
from shop_recs.dashboard.settings_forms import InviteForm
from shop_recs.platform.charts import figure_json
from shop_recs.serving.services import recommend_for_customer
from shop_recs.stores import services as membership_services
from shop_recs.stores.access import require_merchant, store_view
from shop_recs.stores.models import ApiKey, Invitation, Membership, Role

PAGE_SIZE = 50
RECENT_EVENTS = 50


def _event_labels() -> dict[str, str]:
    return {value: str(label) for value, label in EventType.choices}


def _page(request: HttpRequest, qs):
    return Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))


def _querystring_without(request: HttpRequest, *names: str) -> str:
    """The current filters as a query string, minus ``names`` (for sort and page links)."""
    params = [(k, v) for k, values in request.GET.lists() if k not in names for v in values if v != ""]
    return urlencode(params)


def _sort_columns(request: HttpRequest, current: str, columns: list[tuple[str, str]]) -> list[dict]:
    """Header cells for a sortable table: clicking a sorted column flips its direction."""
    base = _querystring_without(request, "sort", "page")
    cells = []
    for field, label in columns:
        if not field:
            cells.append({"label": label, "url": None, "direction": None})
            continue
        direction = "asc" if current == field else "desc" if current == f"-{field}" else None
        target = f"-{field}" if current == field else field
        query = f"{base}&sort={target}" if base else f"sort={target}"
        cells.append({"label": label, "url": f"?{query}", "direction": direction})
    return cells


# --- entry -----------------------------------------------------------------------------------


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to their first store, or explain that they belong to none yet."""
    membership = Membership.objects.filter(user=request.user).select_related("store").order_by("store__name").first()
    if membership is not None:
        return redirect("dashboard:overview", store_slug=membership.store.slug)
    return render(request, "dashboard/no_store.html")


# --- overview --------------------------------------------------------------------------------


@store_view
def overview(request: HttpRequest) -> HttpResponse:
    page = overview_snapshots.overview_page(request.store, request.GET.get("period"))
    periods = [
        ("7", gettext_lazy("7 days")),
        ("30", gettext_lazy("30 days")),
        ("90", gettext_lazy("90 days")),
        ("all", gettext_lazy("All time")),
    ]
    return render(
        request,
        "dashboard/overview.html",
        {
            "section": "overview",
            "data": page.data,
            "figures": page.figures,
            "periods": periods,
            "computed_at": page.computed_at,
        },
    )


# --- catalog ---------------------------------------------------------------------------------


@store_view
def catalog(request: HttpRequest) -> HttpResponse:
    brands = Product.objects.exclude(brand="").order_by("brand").values_list("brand", flat=True).distinct()[:500]
    form = CatalogFilterForm(request.GET, categories=Category.objects.all(), brands=list(brands))
    qs = Product.objects.select_related("category")
    if q := form.value("q"):
        qs = qs.filter(Q(sku__icontains=q) | Q(title__icontains=q) | Q(brand__icontains=q))
    if category := form.value("category"):
        # A category includes its subtree: paths are denormalised, so this is a prefix match.
        qs = qs.filter(Q(category=category) | Q(category__path__startswith=f"{category.path} > "))
    if brand := form.value("brand"):
        qs = qs.filter(brand=brand)
    if active := form.value("active"):
        qs = qs.filter(is_active=active == "yes")
    if in_stock := form.value("in_stock"):
        qs = qs.filter(in_stock=in_stock == "yes")
    sort = form.sort_key()
    qs = qs.order_by(sort, "pk")
    columns = _sort_columns(
        request,
        sort,
        [
            ("sku", _("SKU")),
            ("title", _("Title")),
            ("category__path", _("Category")),
            ("brand", _("Brand")),
            ("price", _("Price")),
            ("", _("Status")),
        ],
    )
    return render(
        request,
        "dashboard/catalog_list.html",
        {
            "section": "catalog",
            "form": form,
            "page": _page(request, qs),
            "columns": columns,
            "page_query": _querystring_without(request, "page"),
        },
    )


@store_view
def product_detail(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product.objects.select_related("category"), sku=sku)
    events = Event.objects.filter(product=product)
    counts = selectors.event_type_counts(events)
    recent = selectors.recent_events(events.select_related("customer"), RECENT_EVENTS)
    return render(
        request,
        "dashboard/product_detail.html",
        {
            "section": "catalog",
            "product": product,
            "stats": {
                "views": counts.get(EventType.VIEW, 0),
                "carts": counts.get(EventType.ADD_TO_CART, 0),
                "purchases": counts.get(EventType.PURCHASE, 0),
            },
            "recent_events": recent,
            "attributes": sorted((product.attributes or {}).items()),
        },
    )


# --- customers -------------------------------------------------------------------------------


@store_view
def customers(request: HttpRequest) -> HttpResponse:
    def distinct(field: str) -> list[str]:
        return list(
            Customer.objects.exclude(**{field: ""}).order_by(field).values_list(field, flat=True).distinct()[:300]
        )

    form = CustomerFilterForm(request.GET, countries=distinct("country"), age_bands=distinct("age_band"))
    qs = Customer.objects.all()
    if q := form.value("q"):
        qs = qs.filter(external_id__icontains=q)
    if country := form.value("country"):
        qs = qs.filter(country=country)
    if age_band := form.value("age_band"):
        qs = qs.filter(age_band=age_band)
    sort = form.sort_key()
    qs = qs.order_by(sort, "pk")
    columns = _sort_columns(
        request,
        sort,
        [
            ("external_id", _("External id")),
            ("country", _("Country")),
            ("age_band", _("Age band")),
            ("", _("Gender")),
            ("signup_date", _("Signed up")),
            ("created_at", _("First seen")),
        ],
    )
    return render(
        request,
        "dashboard/customer_list.html",
        {
            "section": "customers",
            "form": form,
            "page": _page(request, qs),
            "columns": columns,
            "page_query": _querystring_without(request, "page"),
        },
    )


@store_view
def customer_detail(request: HttpRequest, external_id: str) -> HttpResponse:
    """The one customer page: details, activity, the profile and segments (a panel of ``analytics``),
    current recommendations, events, and the erase action."""
    customer = get_object_or_404(Customer, external_id=external_id)
    events = Event.objects.filter(customer=customer)
    labels = _event_labels()
    counts = selectors.event_type_counts(events)
    recent = selectors.recent_events(events.select_related("product"), RECENT_EVENTS)
    days, series = selectors.daily_series(selectors.customer_activity_per_day(customer))
    figure = figure_json(charts.customer_activity_figure(days, series, labels)) if days else None
    panels = customer_panels.panels_for(request.store, customer)
    return render(
        request,
        "dashboard/customer_detail.html",
        {
            "section": "customers",
            "customer": customer,
            "counts": [(labels[t], counts[t]) for t in labels if t in counts],
            "total_events": sum(counts.values()),
            "recent_events": recent,
            "figure": figure,
            # Rows the validation refuses today, stored before it: skipped above, listed to be deleted.
            "bad_events": erasure.list_events(customer, unreadable_only=True, limit=RECENT_EVENTS),
            "panels": panels,
            "needs_charts": bool(figure) or any(p.needs_charts for p in panels),
            "recommendations": recommend_for_customer(request.store, customer, n=10, log=False).items,
        },
    )


# --- settings: API keys ----------------------------------------------------------------------


@store_view
def api_keys(request: HttpRequest) -> HttpResponse:
    """Everyone sees the keys; merchants create them (secret or publishable, with its allowed origins).
    The raw key is rendered once, never stored; the key row records who created and who revoked it."""
    store = request.store
    form = ApiKeyForm()
    if request.method == "POST":
        require_merchant(request)
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            key, raw = ApiKey.generate(
                store,
                form.cleaned_data["name"],
                created_by=request.user,
                kind=form.cleaned_data["kind"],
                allowed_origins=form.cleaned_data["allowed_origins"],
            )
            # Rendered directly from the POST (not via a redirect and the session), so the secret
            # is never written anywhere on the server; only its hash is in the database.
            context = {"section": "settings", "key": key, "raw_key": raw}
            if key.is_publishable:
                # The embed snippet, ready to paste (docs/api.md, "Storefront widget").
                context["api_base"] = request.build_absolute_uri("/api/v1")
                context["widget_url"] = request.build_absolute_uri(static("shop_recs/widget.js"))
            response = render(request, "dashboard/api_key_created.html", context)
            response["Cache-Control"] = "no-store"
            return response
    keys = ApiKey.objects.filter(store=store).select_related("created_by", "revoked_by").order_by("-created_at")
    return render(
        request, "dashboard/api_keys.html", {"section": "settings", "tab": "keys", "keys": keys, "form": form}
    )


@store_view(merchant_only=True)
@require_POST
def revoke_api_key(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id, store=request.store)
    key.revoke(request.user)
    messages.success(request, _("The key “%(name)s” has been revoked.") % {"name": key.name})
    return redirect("dashboard:api_keys", store_slug=request.store.slug)


# --- settings: members -----------------------------------------------------------------------


@store_view
def members(request: HttpRequest) -> HttpResponse:
    store = request.store
    form = AddMemberForm(store=store)
    if request.method == "POST":
        require_merchant(request)
        form = AddMemberForm(request.POST, store=store)
        if form.is_valid():
            try:
                membership_services.add_member(store, form.user, form.cleaned_data["role"])
            except membership_services.MembershipError as exc:
                form.add_error("username", str(exc))
            else:
                messages.success(request, _("%(user)s has been added.") % {"user": form.user.get_username()})
                return redirect("dashboard:members", store_slug=store.slug)
    memberships = Membership.objects.filter(store=store).select_related("user").order_by("user__username")
    return render(
        request,
        "dashboard/members.html",
        {
            "section": "settings",
            "tab": "members",
            "memberships": memberships,
            "form": form,
            "invite_form": InviteForm(),
            "invitations": Invitation.objects.pending().filter(store=store).select_related("invited_by"),
            "roles": Role.choices,
        },
    )


@store_view(merchant_only=True)
@require_POST
def change_member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    # The rules (valid role, the store keeps a merchant) live in shop_recs.stores.services.
    form = RoleForm(request.POST)
    role = form.cleaned_data["role"] if form.is_valid() else ""
    try:
        membership = membership_services.change_member_role(request.store, membership_id, role)
    except Membership.DoesNotExist as exc:
        raise Http404("No such member") from exc
    except membership_services.MembershipError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("%(user)s is now %(role)s.")
            % {"user": membership.user.get_username(), "role": membership.get_role_display()},
        )
    return redirect("dashboard:members", store_slug=request.store.slug)


@store_view(merchant_only=True)
@require_POST
def remove_member(request: HttpRequest, membership_id: int) -> HttpResponse:
    try:
        membership = membership_services.remove_member(request.store, membership_id)
    except Membership.DoesNotExist as exc:
        raise Http404("No such member") from exc
    except membership_services.MembershipError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("%(user)s has been removed.") % {"user": membership.user.get_username()})
    return redirect("dashboard:members", store_slug=request.store.slug)


# --- customers: erasure and bad events (merchant only; ``activity.erasure`` does the work) --------


def _table_counts(counts: dict[str, int]) -> list[tuple[str, int]]:
    """``app_label.Model -> rows`` as (the table's plural name, rows) for the confirmation pages."""
    rows = []
    for label, n in counts.items():
        try:
            name = str(django_apps.get_model(label)._meta.verbose_name_plural)
        except LookupError:
            name = label
        rows.append((name, n))
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def _dashboard_actor(request: HttpRequest) -> erasure.Actor:
    return erasure.Actor(via=ErasureRecord.Via.DASHBOARD, user=request.user)


@store_view(merchant_only=True)
def erase_customer(request: HttpRequest, external_id: str) -> HttpResponse:
    """Confirm (the counts of every table, and the customer id typed again), then erase."""
    customer = get_object_or_404(Customer, external_id=external_id)
    if request.method == "POST":
        if request.POST.get("confirm_id", "").strip() != customer.external_id:
            messages.error(request, _("Type the customer id exactly as shown to confirm the erasure."))
        else:
            record = erasure.erase_customer(request.store, customer, _dashboard_actor(request))
            messages.success(
                request,
                _("The customer has been erased: %(rows)s rows deleted (audit record #%(record)s).")
                % {"rows": record.total_rows, "record": record.pk},
            )
            return redirect("dashboard:customers", store_slug=request.store.slug)
    counts = erasure.preview_erasure(request.store, customer)
    return render(
        request,
        "dashboard/customer_erase.html",
        {
            "section": "customers",
            "customer": customer,
            "counts": _table_counts(counts),
            "total": sum(counts.values()),
        },
    )


@store_view(merchant_only=True)
def delete_customer_events(request: HttpRequest, external_id: str) -> HttpResponse:
    """The selected events (``ids``) on a confirmation page; deleted on a confirmed POST."""
    customer = get_object_or_404(Customer, external_id=external_id)
    back = redirect("dashboard:customer_detail", store_slug=request.store.slug, external_id=customer.external_id)
    raw = request.POST.getlist("ids") if request.method == "POST" else request.GET.getlist("ids")
    if not raw or not all(r.isascii() and r.isdigit() and len(r) <= 18 for r in raw):
        messages.error(request, _("Select at least one event to delete."))
        return back
    if len(raw) > erasure.MAX_EVENT_IDS:
        messages.error(request, _("Select at most %(n)s events at a time.") % {"n": erasure.MAX_EVENT_IDS})
        return back
    ids = {int(r) for r in raw}
    # Read without loading timestamps Python cannot hold (a bad row may be year 1).
    events = erasure.list_events(customer, ids=ids, limit=len(ids))
    if len(events) != len(ids):
        messages.error(request, _("Some selected events are not this customer's any more; select them again."))
        return back
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        record = erasure.delete_events(request.store, customer, [e.pk for e in events], _dashboard_actor(request))
        messages.success(
            request,
            _("%(n)s events deleted (audit record #%(record)s).")
            % {"n": record.row_counts.get("activity.Event", 0), "record": record.pk},
        )
        return back
    return render(
        request,
        "dashboard/customer_events_delete.html",
        {"section": "customers", "customer": customer, "events": events},
    )
