"""The default artifact storage: Django's ``FileSystemStorage`` rooted at ``MODEL_DIR``.

``STORAGES["artifacts"]`` (settings, ``ARTIFACT_STORAGE``) names this class unless artifacts live in
S3. The root is read from ``settings.MODEL_DIR`` at every call rather than fixed when the storage is
first built, because the setting is what the rest of the code (health checks, tests) moves.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage


class ModelDirStorage(FileSystemStorage):
    """Artifacts as plain files under ``MODEL_DIR`` (the embedded default; one shared directory)."""

    @property
    def base_location(self) -> str:  # type: ignore[override] - a live value instead of a cached one
        return str(settings.MODEL_DIR)

    @property
    def location(self) -> str:  # type: ignore[override]
        return os.path.abspath(self.base_location)
