"""The errors the training package raises on purpose (views and the schedule catch them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shop_recs.training.models import TrainingRun


class TrainingError(Exception):
    """Base of the errors training raises on purpose."""


class TrainingAlreadyRunning(TrainingError):  # noqa: N818 - the name the brief and callers use
    """The store already has a queued or running training run (the per-store lock)."""

    def __init__(self, run: TrainingRun | None) -> None:
        self.run = run
        if run is None:
            msg = "A training run for this store is already queued or running."
        else:
            msg = (
                f"Training run #{run.pk} ({', '.join(run.algorithms)}) is already {run.status} for this store "
                f"since {run.created_at:%Y-%m-%d %H:%M:%S} UTC; wait for it to finish."
            )
        super().__init__(msg)


class ArtifactCorrupt(TrainingError):  # noqa: N818 - reads as a state, like the lock error
    """A model artifact is missing or its SHA-256 does not match the recorded checksum."""


class ArtifactUnavailable(TrainingError):  # noqa: N818
    """The artifact storage could not be read right now (S3 unreachable, access denied, local disk
    full): unlike :class:`ArtifactCorrupt` this says nothing about the version, which stays usable."""


class ArtifactStorageFull(TrainingError):  # noqa: N818 - reads as a state, like the lock error
    """The model storage (``MODEL_DIR``) has no space (or quota) left for a new artifact."""


class VersionNotUsable(TrainingError):  # noqa: N818
    """The version cannot be activated (corrupt, or belongs to another store)."""


class ActivationNotAllowed(TrainingError):  # noqa: N818
    """The user may not change the store's live model (only its merchants, or the system, may)."""
