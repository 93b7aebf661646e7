"""Static files published from installed Python packages: named files only, never a package directory.

``STATICFILES_DIRS`` used to list plotly's whole ``package_data`` directory to serve ``plotly.min.js``
without a CDN. collectstatic then copied, and WhiteNoise served, everything else in it too: a second
JavaScript bundle (``widgetbundle.js``), plotly's sample data sets and its template JSON (about 5 MB
that no page asks for). :class:`PackageFileFinder` publishes exactly the files in :data:`PACKAGE_FILES`,
read from the installed wheel, so nothing is copied into the repository either.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from django.contrib.staticfiles import utils
from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import CheckMessage, Error
from django.core.files.storage import FileSystemStorage

#: Public static path -> (installed package, file inside it).
PACKAGE_FILES: dict[str, tuple[str, str]] = {
    "vendor/plotly/plotly.min.js": ("plotly", "package_data/plotly.min.js"),
}


def package_file(package: str, relative: str) -> Path | None:
    """The absolute path of ``relative`` inside the installed ``package``, or None if either is missing.

    ``find_spec`` locates a top-level package without importing it (importing plotly takes a while).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate.resolve()
    return None


class PackageFileFinder(BaseFinder):
    """A staticfiles finder for the single files of :data:`PACKAGE_FILES` (collectstatic, runserver,
    WhiteNoise's finder mode)."""

    def __init__(self, files: dict[str, tuple[str, str]] | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.files = dict(PACKAGE_FILES if files is None else files)

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        return [
            Error(
                f"The static file {public!r} should come from {relative!r} in the installed package "
                f"{package!r}, which is not there.",
                hint="Install the pinned requirements (requirements.txt).",
                obj=self,
                id="shop_recs.E001",
            )
            for public, (package, relative) in self.files.items()
            if package_file(package, relative) is None
        ] + [
            # list() publishes a file under its own name, inside the public directory.
            Error(f"The static file {public!r} must keep the name of {relative!r}.", obj=self, id="shop_recs.E002")
            for public, (_package, relative) in self.files.items()
            if PurePosixPath(public).name != PurePosixPath(relative).name
        ]

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str]:
        if kwargs:  # Django 5.2 still accepts the deprecated all= spelling
            find_all = self._check_deprecated_find_param(find_all=find_all, **kwargs)
        source = self.files.get(path)
        found = package_file(*source) if source else None
        if found is None:
            return []
        return [str(found)] if find_all else str(found)

    def list(self, ignore_patterns: list[str] | None) -> Iterator[tuple[str, FileSystemStorage]]:
        for public, (package, relative) in self.files.items():
            found = package_file(package, relative)
            if found is None or (ignore_patterns and utils.matches_patterns(public, ignore_patterns)):
                continue
            # A storage rooted at the file's own directory, prefixed with the public directory: the
            # (path, storage) pair collectstatic and WhiteNoise expect from a finder. Only this file is
            # listed, so nothing else in that directory is ever collected.
            storage = FileSystemStorage(location=str(found.parent))
            storage.prefix = str(PurePosixPath(public).parent)
            yield found.name, storage
