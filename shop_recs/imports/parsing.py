"""Small parsers and file readers shared by the file importers (CSV, gzip, JSONL)."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from shop_recs.imports.jobs import ImportFailed, RowError, _Errors

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def _text(raw: Any) -> str:
    if raw is None:
        return ""
    return str(raw).strip()


def _parse_bool(raw: Any, default: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    value = _text(raw).lower()
    if value == "":
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{raw!r} is not a yes/no value (use true/false, 1/0, yes/no)")


def _parse_float(raw: Any) -> float | None:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        try:
            number = float(raw)
        except OverflowError:  # an integer beyond float's range
            raise ValueError(f"{str(raw)[:40]!r}... is not a finite number") from None
    else:
        value = _text(raw)
        if value == "":
            return None
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number")
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{raw!r} is not a finite number")
    return number


def _parse_int(raw: Any) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if abs(raw) > 2**31 - 1:
            raise ValueError("is too large")
        return raw
    value = _text(raw)
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{raw!r} is not a whole number")
    if not number.is_integer():
        raise ValueError(f"{raw!r} is not a whole number")
    if abs(number) > 2**31 - 1:
        raise ValueError(f"{raw!r} is too large")
    return int(number)


def _parse_timestamp(raw: Any, tz: ZoneInfo) -> datetime:
    """ISO 8601 (``2024-05-01T10:00:00Z``, ``2024-05-01 10:00:00+02:00``) or epoch seconds.

    A timestamp without an offset is read in the store's time zone.
    """
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        try:
            return datetime.fromtimestamp(float(raw), tz=ZoneInfo("UTC"))
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{raw!r} is not a time in seconds since 1970") from None
    value = _text(raw)
    if value == "":
        raise ValueError("timestamp is empty")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{raw!r} is not an ISO 8601 date-time (e.g. 2024-05-01T10:00:00Z)")
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def _parse_context(raw: Any) -> dict | None:
    if raw is None or isinstance(raw, dict):
        return raw or None
    value = _text(raw)
    if value == "":
        return None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):  # JSONDecodeError, a 4,300-digit integer, deep nesting
        raise ValueError(f"context {value[:60]!r} is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise ValueError("context must be a JSON object")
    return parsed or None


def _check_length(value: str, limit: int, name: str) -> str:
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return value


def _open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _csv_rows(
    path: Path, errors: _Errors, check_header: Callable[[list[str]], None]
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Header and an iterator of (line number, row dict) with line numbers that match an editor.

    ``check_header`` may raise ``ImportFailed``; the file is closed either way.
    """
    fh = _open_text(path)
    try:
        first = fh.readline()
    except UnicodeDecodeError as exc:
        fh.close()
        raise ImportFailed([RowError(1, f"cannot read the header: {exc}")]) from None
    # Tab-separated when the header has tabs and no commas: Google Merchant Center's feed format
    # (.txt/.tsv); everything else is read as comma-separated.
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(itertools.chain([first] if first else [], fh), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
        check_header(header)
    except StopIteration:
        fh.close()
        raise ImportFailed([RowError(1, "the file is empty (no header row)")])
    except (UnicodeDecodeError, csv.Error) as exc:
        fh.close()
        raise ImportFailed([RowError(1, f"cannot read the header: {exc}")])
    except ImportFailed:
        fh.close()
        raise

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        width = len(header)
        start = reader.line_num + 1
        try:
            for values in reader:
                line, start = start, reader.line_num + 1
                if not values or all(v.strip() == "" for v in values):
                    continue
                if len(values) != width:
                    errors.add(line, f"expected {width} columns, found {len(values)}")
                    continue
                yield line, dict(zip(header, values, strict=True))
        except (UnicodeDecodeError, csv.Error) as exc:
            errors.add(reader.line_num, f"unreadable CSV: {exc}")
        finally:
            fh.close()

    return header, rows()


def _jsonl_rows(path: Path, errors: _Errors) -> Iterator[tuple[int, dict[str, Any]]]:
    line_no = 0
    with _open_text(path) as fh:
        try:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    errors.add(line_no, f"invalid JSON: {exc.msg}")
                    continue
                except (ValueError, RecursionError) as exc:
                    # An integer over 4,300 digits (ValueError), or nesting Python cannot parse.
                    reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:120]
                    errors.add(line_no, f"invalid JSON: {reason}")
                    continue
                if not isinstance(obj, dict):
                    errors.add(line_no, "each line must be a JSON object")
                    continue
                yield line_no, {str(k).strip().lower(): v for k, v in obj.items()}
        except UnicodeDecodeError as exc:
            errors.add(line_no + 1, f"the file is not UTF-8: {exc}")


def _is_jsonl(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in (".jsonl", ".ndjson")
