"""A worker SIGKILLed in the middle of a customer-profile run and of an evaluation run.

The kill lands at a named checkpoint (``SHOP_RECS_TEST_JOB_PAUSE``, see
``platform.jobs.pause_for_fault_test``): the worker logs that it paused there, and the test kills
it only once that line is in its log, so "in the middle" is a fact, not a timing guess.

* Profiles: killed after the new profiles were upserted and before the segments were rebuilt. The
  store keeps its old complete set (profiles, segments, memberships), the broker's redelivery re-runs
  the run on a fresh worker, and after it the new complete set is visible.
* Evaluation: killed after the first of two algorithms was scored. The run never shows as finished
  with partial metrics; the redelivery finds its worker gone and fails it with a clear reason, and a
  new evaluation on the fresh worker succeeds.
"""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from analytics import periodic
from analytics import services as profile_services
from analytics.evaluation import services as evaluation_services
from analytics.evaluation.models import EvaluationRun
from analytics.models import CustomerProfile, ProfileRun, Segment
from shop_recs.platform.jobs import WORKER_KEY, JobStatus
from shop_recs.stores.scoping import unscoped
from tests.faults.conftest import wait_until
from tests.serving.conftest import T0

pytestmark = pytest.mark.services

#: How long the doomed worker sleeps at its checkpoint: far longer than the test needs to kill it.
PAUSE = "120"
#: The fresh worker's broker visibility timeout: the dead worker's unacknowledged task comes back
#: after it (production waits CELERY_VISIBILITY_TIMEOUT, 2 hours; kombu checks every 10 s).
REDELIVER_AFTER = "2"


def _paused_at(worker, checkpoint: str) -> bool:
    return f"paused at fault-test checkpoint {checkpoint}" in worker.output(tail=200_000)


def _kill(worker) -> None:
    worker.proc.kill()  # SIGKILL: no clean shutdown, no ack, no failure handler, no rollback by us
    worker.proc.wait(timeout=10)


def _profile_state(store) -> dict:
    """Everything a page shows of the store's profiles and segments, comparable before and after."""
    with unscoped():
        profiles = {
            p["customer_id"]: p
            for p in CustomerProfile.objects.filter(store=store).values(
                "customer_id", "run_id", "frequency", "monetary", "events", "auto_segment_id", "segment_ids"
            )
        }
        segments = {
            s["pk"]: s
            for s in Segment.objects.filter(store=store).values("pk", "kind", "name", "size", "summary", "updated_at")
        }
    return {"profiles": profiles, "segments": segments}


def _assert_complete(state: dict, run_id: int) -> None:
    """One run's complete set: every profile from that run, every auto member in a live segment."""
    profiles, segments = state["profiles"], state["segments"]
    assert profiles and {p["run_id"] for p in profiles.values()} == {run_id}
    auto = {pk: s for pk, s in segments.items() if s["kind"] == Segment.Kind.AUTO}
    assert auto, "the run built no automatic segments"
    members: dict[int, int] = {}
    for p in profiles.values():
        assert p["auto_segment_id"] in auto, p
        members[p["auto_segment_id"]] = members.get(p["auto_segment_id"], 0) + 1
        assert p["auto_segment_id"] in p["segment_ids"], p  # memberships refreshed with the segments
    assert {pk: s["size"] for pk, s in auto.items()} == {pk: members.get(pk, 0) for pk in auto}


def _profile_run(pk: int) -> ProfileRun:
    with unscoped():
        return ProfileRun.objects.get(pk=pk)


def test_worker_killed_mid_profile_run(worker_var_dir, start_worker, shop, store, add_events):
    first = profile_services.build_profiles(store)  # in this process: the old complete set
    assert first.status == JobStatus.SUCCEEDED
    before = _profile_state(store)
    _assert_complete(before, first.pk)

    # New purchases, so the new run's profiles differ from the old ones.
    customers, products = shop["customers"], shop["products"]
    later = T0 + timedelta(days=2)
    add_events(
        store, [(customers[i], products["N0"], "purchase", later + timedelta(minutes=i), f"n{i}") for i in range(6)]
    )

    doomed = start_worker(SHOP_RECS_TEST_JOB_PAUSE=f"profiles.saved={PAUSE}")
    run = profile_services.start_profile_run(store, ProfileRun.Mode.FULL)
    wait_until(lambda: _paused_at(doomed, "profiles.saved"), timeout=60, workers=(doomed,))
    # The new profiles are written (inside the run's transaction) but the segments are not rebuilt yet.
    assert _profile_run(run.pk).status == JobStatus.RUNNING
    assert _profile_state(store) == before
    _kill(doomed)

    # Nothing of the dead run is visible: the old profiles, segments and memberships, all of them.
    assert _profile_state(store) == before
    orphan = _profile_run(run.pk)
    assert orphan.status == JobStatus.RUNNING and not orphan.is_finished and orphan.n_customers == 0
    # While it is open, the periodic refresh leaves the store alone (the per-store "lock").
    assert periodic.profile_refresh_mode(store, orphan.created_at + timedelta(days=30)) is None

    # A fresh worker: the broker redelivers the dead worker's task, which re-runs the profile run.
    fresh = start_worker(CELERY_VISIBILITY_TIMEOUT=REDELIVER_AFTER)
    done = wait_until(lambda: (r := _profile_run(run.pk)).is_finished and r, timeout=90, workers=(fresh, doomed))
    assert done.status == JobStatus.SUCCEEDED, done.error
    after = _profile_state(store)
    _assert_complete(after, run.pk)
    assert set(after["profiles"]) == set(before["profiles"])
    for i in range(6):  # the new purchases are in the new set
        c = customers[i].pk
        assert after["profiles"][c]["frequency"] == before["profiles"][c]["frequency"] + 1

    # The store is not locked: no run is open, and the next run (on the fresh worker) succeeds.
    with unscoped():
        assert not ProfileRun.objects.filter(store=store, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists()
    following = profile_services.start_profile_run(store, ProfileRun.Mode.FULL)
    following = wait_until(lambda: (r := _profile_run(following.pk)).is_finished and r, timeout=90, workers=(fresh,))
    assert following.status == JobStatus.SUCCEEDED, following.error
    _assert_complete(_profile_state(store), following.pk)


def _evaluation(pk: int) -> EvaluationRun:
    with unscoped():
        return EvaluationRun.objects.get(pk=pk)


def test_worker_killed_mid_evaluation(worker_var_dir, start_worker, shop, store):
    algorithms = ["popularity", "item_knn"]
    doomed = start_worker(SHOP_RECS_TEST_JOB_PAUSE=f"evaluation.algorithm_done={PAUSE}")
    run = evaluation_services.start_evaluation(store, algorithms, "leave_last", {}, [5, 10])
    wait_until(lambda: _paused_at(doomed, "evaluation.algorithm_done"), timeout=60, workers=(doomed,))
    running = _evaluation(run.pk)
    assert running.status == JobStatus.RUNNING and running.stage == "evaluating popularity"
    assert running.split_info == {WORKER_KEY: f"{socket.gethostname()}:{doomed.pid}"}  # who holds it
    _kill(doomed)

    # One algorithm was scored in the dead worker's memory; none of it reached the row.
    orphan = _evaluation(run.pk)
    assert orphan.status == JobStatus.RUNNING and not orphan.is_finished
    assert orphan.results == {} and orphan.finished_at is None
    assert orphan.status_payload()["finished"] is False

    # The redelivery, on a fresh worker, sees that the worker holding the run is gone and fails it.
    fresh = start_worker(CELERY_VISIBILITY_TIMEOUT=REDELIVER_AFTER)
    dead = wait_until(lambda: (r := _evaluation(run.pk)).is_finished and r, timeout=90, workers=(fresh, doomed))
    assert dead.status == JobStatus.FAILED
    assert dead.error == evaluation_services.WORKER_DIED_ERROR
    assert dead.results == {}  # failed, and still no partial metrics

    # Nothing is left holding the store: a new evaluation on the fresh worker completes with every metric.
    again = evaluation_services.start_evaluation(store, algorithms, "leave_last", {}, [5, 10])
    done = wait_until(lambda: (r := _evaluation(again.pk)).is_finished and r, timeout=120, workers=(fresh,))
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert sorted(done.results["algorithms"]) == sorted(algorithms)
    for name in algorithms:
        assert "ndcg@10" in done.results["algorithms"][name]["metrics"]
    assert WORKER_KEY not in done.split_info and done.split_info["protocol"] == "leave_last"
