from __future__ import annotations


def current_store(request) -> dict:
    """Expose the dashboard's current store, the user's role in it and their other stores."""
    return {
        "current_store": getattr(request, "store", None),
        "current_membership": getattr(request, "membership", None),
        "user_memberships": getattr(request, "user_memberships", ()),
    }
