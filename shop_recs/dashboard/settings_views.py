"""Settings → Store (name, currency, time zone, language) and member invitations.

Thin views: the rules live in ``shop_recs.stores.services`` and ``shop_recs.stores.invitations``.
"""

from __future__ import annotations

import copy

from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from shop_recs.dashboard.settings_forms import AcceptInvitationSignupForm, InviteForm, StoreSettingsForm
from shop_recs.serving.audit import record_change
from shop_recs.serving.models import ChangeKind
from shop_recs.stores import invitations
from shop_recs.stores import services as membership_services
from shop_recs.stores.access import require_merchant, store_view
from shop_recs.stores.models import Invitation, Store

# The session backend name: two backends are configured (axes first), so login() must be told which.
_LOGIN_BACKEND = "django.contrib.auth.backends.ModelBackend"


@store_view
def store_settings(request: HttpRequest) -> HttpResponse:
    """Everyone sees the settings; merchants change them. A change is recorded in the change history."""
    store: Store = request.store
    # A copy: validating a ModelForm writes the new values onto its instance, and the service must
    # compare them with the stored ones to record what changed.
    form = StoreSettingsForm(instance=copy.copy(store))
    if request.method == "POST":
        require_merchant(request)
        form = StoreSettingsForm(request.POST, instance=copy.copy(store))
        if form.is_valid():
            values = {f: form.cleaned_data[f] for f in membership_services.STORE_SETTINGS_FIELDS}
            changed = membership_services.update_store_settings(store, **values)
            if changed:
                summary = ", ".join(f"{name}: {old or '—'} → {new or '—'}" for name, (old, new) in changed.items())
                record_change(store, request.user, ChangeKind.STORE, summary, obj=store, details=changed)
                messages.success(request, _("The store settings have been saved."))
            else:
                messages.info(request, _("Nothing changed."))
            return redirect("dashboard:store_settings", store_slug=store.slug)
    return render(request, "dashboard/store_settings.html", {"section": "settings", "tab": "store", "form": form})


@store_view(merchant_only=True)
@require_POST
def invite_member(request: HttpRequest) -> HttpResponse:
    """Create an invitation and show its link once (no mail is sent: the merchant passes it on)."""
    store: Store = request.store
    form = InviteForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else field
            messages.error(request, f"{label}: {' '.join(errors)}")
        return redirect("dashboard:members", store_slug=store.slug)
    try:
        created = invitations.invite(store, form.cleaned_data["email"], form.cleaned_data["role"], request.user)
    except invitations.InvitationError as exc:
        messages.error(request, str(exc))
        return redirect("dashboard:members", store_slug=store.slug)
    link = request.build_absolute_uri(reverse("accept_invitation", kwargs={"token": created.token}))
    # Rendered from the POST, never stored: only the token's hash is in the database.
    response = render(
        request,
        "dashboard/invitation_created.html",
        {"section": "settings", "tab": "members", "invitation": created.invitation, "link": link},
    )
    response["Cache-Control"] = "no-store"
    return response


@store_view(merchant_only=True)
@require_POST
def revoke_invitation(request: HttpRequest, invitation_id: int) -> HttpResponse:
    try:
        invitation = invitations.revoke_invitation(request.store, invitation_id)
    except Invitation.DoesNotExist as exc:
        raise Http404("No such invitation") from exc
    messages.success(request, _("The invitation of %(email)s has been withdrawn.") % {"email": invitation.email})
    return redirect("dashboard:members", store_slug=request.store.slug)


def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The invitation link: a signed-in user joins with one click; anyone else creates an account
    (or signs in first and comes back)."""
    try:
        invitation = invitations.invitation_for_token(token)
    except invitations.InvitationError as exc:
        return render(request, "registration/invitation.html", {"error": str(exc)}, status=410)
    form = AcceptInvitationSignupForm(email=invitation.email)
    if request.method == "POST":
        user = request.user if request.user.is_authenticated else None
        if user is None:
            form = AcceptInvitationSignupForm(request.POST, email=invitation.email)
            if form.is_valid():
                user = form.create_user()
                login(request, user, backend=_LOGIN_BACKEND)
        if user is not None:
            try:
                invitations.accept_invitation(token, user)
            except invitations.InvitationError as exc:
                return render(request, "registration/invitation.html", {"error": str(exc)}, status=410)
            messages.success(request, _("Welcome to %(store)s.") % {"store": invitation.store.name})
            return redirect("dashboard:overview", store_slug=invitation.store.slug)
    login_url = f"{reverse('login')}?next={request.path}"
    return render(
        request, "registration/invitation.html", {"invitation": invitation, "form": form, "login_url": login_url}
    )
