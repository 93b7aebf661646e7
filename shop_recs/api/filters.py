"""Strict query-parameter filters for the API's list endpoints (django-filter ``FilterSet``s).

django-filter's own fields are lenient where a client's mistake should be loud: its boolean filter
reads ``?active=maybe`` as "no filter", and its error body is a dict of messages in a shape no
other API answer has. The filters here refuse every value they cannot read, and
:class:`StrictFilterBackend` / :func:`filter_or_400` turn the refusals into the API's one 400 shape
(``invalid_input``, one ``{field, reason, value}`` per bad parameter; docs/api.md, "List filters").

An empty value (``?active=``) means "no filter", django-filter's convention (an HTML form sends
empty fields). Unknown parameters are ignored, as before: caches and trackers add their own.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils.dateparse import parse_date, parse_datetime
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from shop_recs.api.params import BadInput, InvalidParam, parse_int, with_value

__all__ = [
    "FILTER_TEXT_MAX",
    "StrictBooleanFilter",
    "StrictChoiceFilter",
    "StrictDateTimeFilter",
    "StrictFilterBackend",
    "StrictIntegerFilter",
    "StrictNumberFilter",
    "StrictTextFilter",
    "filter_or_400",
    "filterset_parameters",
]

#: Longest text filter value: the longest text a filtered column holds is a 500-character title,
#: and nothing a client filters on (a category path, a brand, a sku) comes near 200.
FILTER_TEXT_MAX = 200
# Longer than any ISO 8601 date-time with microseconds and an offset (32 characters).
_DATETIME_MAX_CHARS = 40
_NUMBER_MAX_CHARS = 32
# yes/no too: the hand parser before the FilterSets read "yes" as true, and clients may still send it.
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


def _invalid(reason: str) -> forms.ValidationError:
    return forms.ValidationError(reason, code="invalid")


class StrictBooleanField(forms.Field):
    """``true``/``false`` (or ``1``/``0``, ``yes``/``no``, any case); anything else is an error, not "no filter"."""

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _invalid("must be true or false")


class StrictDateTimeField(forms.Field):
    """An ISO 8601 date (midnight UTC) or date-time; a date-time without an offset is UTC."""

    def to_python(self, value: Any) -> dt.datetime | None:
        if value in (None, ""):
            return None
        text = str(value).strip()
        reason = "must be an ISO 8601 date or date-time, e.g. 2025-03-01 or 2025-03-01T12:00:00Z"
        if len(text) > _DATETIME_MAX_CHARS:
            raise _invalid(reason)
        try:
            # parse_datetime raises ValueError for a well-formed but impossible value (month 13).
            parsed = parse_datetime(text)
            if parsed is None and (day := parse_date(text)) is not None:
                parsed = dt.datetime.combine(day, dt.time.min)
        except (ValueError, OverflowError):
            parsed = None
        if parsed is None:
            raise _invalid(reason)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        try:
            # An offset at the ends of the calendar (0001-01-01T00:00-01:00) has no UTC instant.
            return parsed.astimezone(dt.UTC)
        except OverflowError:
            raise _invalid("is outside the years 1 to 9999") from None


class StrictNumberField(forms.Field):
    """A finite decimal number in ``min_value..max_value`` (ASCII, no ``NaN``/``Infinity``)."""

    def __init__(self, *, min_value: Decimal, max_value: Decimal, **kwargs: Any) -> None:
        self.min_value, self.max_value = min_value, max_value
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Decimal | None:
        if value in (None, ""):
            return None
        text = str(value).strip()
        number: Decimal | None = None
        if len(text) <= _NUMBER_MAX_CHARS and text.isascii():
            try:
                number = Decimal(text)
            except InvalidOperation:
                number = None
        if number is None or not number.is_finite():
            raise _invalid("must be a number")
        if not self.min_value <= number <= self.max_value:
            raise _invalid(f"must be between {self.min_value} and {self.max_value}")
        return number


class StrictIntegerField(forms.Field):
    """An integer in ``min_value..max_value`` spelled with ASCII digits (``params.int_param``'s rule)."""

    def __init__(self, *, min_value: int, max_value: int, **kwargs: Any) -> None:
        self.min_value, self.max_value = min_value, max_value
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> int | None:
        if value in (None, ""):
            return None
        number = parse_int(value)
        if number is None:
            raise _invalid("must be an integer")
        if not self.min_value <= number <= self.max_value:
            raise _invalid(f"must be between {self.min_value} and {self.max_value}")
        return number


class StrictChoiceField(forms.ChoiceField):
    """One of the choices; the error lists them (Django's says only "Select a valid choice")."""

    def validate(self, value: Any) -> None:
        if value and not self.valid_value(value):
            names = ", ".join(str(key) for key, _label in self.choices if key != "")
            raise _invalid(f"must be one of: {names}")


class StrictTextField(forms.CharField):
    """Text of at most ``FILTER_TEXT_MAX`` characters (NUL bytes never reach here: ApiErrorMiddleware)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", FILTER_TEXT_MAX)
        super().__init__(**kwargs)
        # Django's MaxLengthValidator has its own wording; validate() gives the API's.
        self.validators = []

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value and self.max_length is not None and len(value) > self.max_length:
            raise _invalid(f"must be at most {self.max_length} characters")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class StrictDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = StrictDateTimeField


class StrictNumberFilter(django_filters.NumberFilter):
    field_class = StrictNumberField

    def get_max_validator(self) -> None:
        return None  # the field's own bounds, with the API's message


class StrictIntegerFilter(django_filters.NumberFilter):
    field_class = StrictIntegerField

    def get_max_validator(self) -> None:
        return None


class StrictChoiceFilter(django_filters.ChoiceFilter):
    field_class = StrictChoiceField


class StrictTextFilter(django_filters.CharFilter):
    field_class = StrictTextField


def filter_or_400(filterset: django_filters.FilterSet) -> QuerySet:
    """``filterset.qs``, or :class:`InvalidParam` (400 ``invalid_input``) naming every bad parameter and value."""
    if filterset.is_valid():
        return filterset.qs
    problems = []
    for field, errors in filterset.form.errors.as_data().items():
        reason = "; ".join(message for error in errors for message in error.messages)
        problems.append(with_value(BadInput(field, reason), filterset.data))
    raise InvalidParam(problems)


class StrictFilterBackend(DjangoFilterBackend):
    """DRF filter backend for the ``FilterSet`` above: a bad value is the API's 400, never ignored."""

    def filter_queryset(self, request: Any, queryset: QuerySet, view: Any) -> QuerySet:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        return filter_or_400(filterset)


_SCHEMA_TYPES: tuple[tuple[type, OpenApiTypes], ...] = (
    (StrictBooleanFilter, OpenApiTypes.BOOL),
    (StrictDateTimeFilter, OpenApiTypes.DATETIME),
    (StrictIntegerFilter, OpenApiTypes.INT),
    (StrictNumberFilter, OpenApiTypes.NUMBER),
)


def filterset_parameters(filterset_class: type[django_filters.FilterSet]) -> list[OpenApiParameter]:
    """The OpenAPI query parameters of ``filterset_class``, for a plain ``APIView`` (drf-spectacular
    documents a generic list view's filters itself, through its django-filter extension)."""
    parameters = []
    for name, flt in filterset_class.base_filters.items():
        kind = next((t for cls, t in _SCHEMA_TYPES if isinstance(flt, cls)), OpenApiTypes.STR)
        choices = [key for key, _label in flt.extra["choices"]] if isinstance(flt, StrictChoiceFilter) else None
        description = flt.extra.get("help_text", "")
        parameters.append(OpenApiParameter(name, kind, OpenApiParameter.QUERY, description=description, enum=choices))
    return parameters
