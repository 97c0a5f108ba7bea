"""The service's policy and its fair scheduler, as pure logic."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest

from codedock_magic.errors import InvalidValueError, ServiceRefusedError
from codedock_magic.service.policy import Policy, Tier
from codedock_magic.service.scheduler import FairScheduler, QueueFullError, Slot

MB = 1024**2


def test_what_the_caller_did_not_ask_for_comes_from_the_service() -> None:
    tier = Tier.from_settings({"default_memory": "128m", "default_timeout": 5})
    limits, image = tier.apply({}, None)
    assert (limits.memory, limits.timeout, image) == (128 * MB, 5, "codedock/pybuntu:latest")
    limits, _ = tier.apply({"memory": 64 * MB}, None)
    assert (limits.memory, limits.timeout) == (64 * MB, 5)


def test_an_asked_value_over_a_ceiling_is_refused_never_cut() -> None:
    tier = Tier.from_settings({"max_memory": "512m", "max_timeout": 30, "max_pids": 100})
    for asked, named in (
        ({"memory": "1g"}, "memory 1g is over the service's ceiling max_memory = 512m"),
        ({"timeout": 31}, "max_timeout = 30"),
        ({"pids": 101}, "max_pids = 100"),
    ):
        with pytest.raises(ServiceRefusedError, match=named) as caught:
            tier.apply(asked, None)
        assert caught.value.status == 422
    assert tier.apply({"memory": "512m"}, None)[0].memory == 512 * MB


def test_no_ceiling_when_it_is_zero_or_empty() -> None:
    tier = Tier.from_settings({"max_memory": "", "max_timeout": 0})
    limits, _ = tier.apply({"memory": "4g", "timeout": 3000}, None)
    assert (limits.memory, limits.timeout) == (4096 * MB, 3000)


def test_images_outside_the_allowed_list_are_refused() -> None:
    tier = Tier.from_settings({"allowed_images": ["codedock/pybuntu:latest", "other:1"]})
    assert tier.apply({}, "other:1")[1] == "other:1"
    with pytest.raises(ServiceRefusedError, match="'evil:latest' is not allowed"):
        tier.apply({}, "evil:latest")
    assert Tier.from_settings({"allowed_images": []}).apply({}, "any:1")[1] == "any:1"


def test_bad_requests_name_the_field() -> None:
    tier = Tier.from_settings({})
    with pytest.raises(InvalidValueError, match="memory 'lots'"):
        tier.apply({"memory": "lots"}, None)
    with pytest.raises(InvalidValueError, match="limit 'colour'"):
        tier.apply({"colour": 1}, None)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"max_memory": "lots"}, "max_memory"),
        ({"default_memory": "2g", "max_memory": "1g"}, "default_memory"),
        ({"default_timeout": -1}, "default_timeout"),
        ({"max_cpus": "many"}, "max_cpus"),
        ({"max_concurrent_per_user": 0}, "max_concurrent_per_user"),
        ({"max_queued_per_user": -1}, "max_queued_per_user"),
        ({"allowed_images": "one:1"}, "allowed_images"),
        ({"default_image": "x:1"}, "default_image"),
        ({"max_code_bytes": "big"}, "max_code_bytes"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_setting_is_named(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        Tier.from_settings(settings)
    assert caught.value.name.endswith(named) or named in str(caught.value)


def test_a_group_gets_its_own_settings_and_several_groups_the_most_generous() -> None:
    policy = Policy(
        {"max_memory": "512m", "max_timeout": 30, "max_concurrent_per_user": 1},
        {
            "teachers": {"max_memory": "2g", "max_concurrent_per_user": 4},
            "graders": {"max_memory": "1g", "max_timeout": 300},
            "unbounded": {"max_memory": ""},
        },
    )
    assert policy.tier([]).ceilings["memory"] == 512 * MB
    assert policy.tier(["students"]).ceilings["memory"] == 512 * MB
    teacher = policy.tier(["teachers"])
    assert (teacher.ceilings["memory"], teacher.ceilings["timeout"]) == (2048 * MB, 30)
    assert teacher.max_concurrent == 4
    both = policy.tier(["graders", "teachers"])
    assert (both.ceilings["memory"], both.ceilings["timeout"]) == (2048 * MB, 300)
    assert "memory" not in policy.tier(["unbounded", "graders"]).ceilings


def test_a_bad_group_override_is_found_at_start() -> None:
    with pytest.raises(InvalidValueError, match=r"group_settings\['teachers'\]\.max_memory"):
        Policy({}, {"teachers": {"max_memory": "lots"}})


def test_the_refusals_pickle() -> None:
    error = QueueFullError("alice", 2, 8)
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.status == 429


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_user_past_their_quota_waits_then_is_refused() -> None:
    async def scenario() -> None:
        scheduler = FairScheduler(capacity=8)
        first = scheduler.admit("alice", max_concurrent=1, max_queued=1)
        assert isinstance(first, Slot)
        second = scheduler.admit("alice", max_concurrent=1, max_queued=1)
        assert isinstance(second, asyncio.Future) and not second.done()
        assert scheduler.position("alice", second) == 1
        with pytest.raises(QueueFullError):
            scheduler.admit("alice", max_concurrent=1, max_queued=1)
        # Another user is not behind alice.
        assert isinstance(scheduler.admit("bob", max_concurrent=1, max_queued=1), Slot)
        scheduler.release(first)
        assert second.done()
        assert scheduler.active == 2

    _run(scenario())


def test_freed_slots_go_to_users_in_turn_not_to_the_one_who_flooded() -> None:
    async def scenario() -> list[str]:
        scheduler = FairScheduler(capacity=2)
        slots = [scheduler.admit("heavy", max_concurrent=2, max_queued=50) for _ in range(2)]
        assert all(isinstance(slot, Slot) for slot in slots)
        waiting: list[tuple[str, asyncio.Future[None]]] = []
        for _ in range(10):
            future = scheduler.admit("heavy", max_concurrent=2, max_queued=50)
            assert isinstance(future, asyncio.Future)
            waiting.append(("heavy", future))
        light = scheduler.admit("light", max_concurrent=2, max_queued=50)
        assert isinstance(light, asyncio.Future)
        waiting.append(("light", light))
        scheduler.release(slots[0])
        granted = [user for user, future in waiting if future.done()]
        return granted

    # The heavy user's ten waiting runs came first, yet the light user's is next.
    assert _run(scenario()) == ["light"]


def test_a_run_that_leaves_the_queue_gives_its_place_up() -> None:
    async def scenario() -> None:
        scheduler = FairScheduler(capacity=1)
        slot = scheduler.admit("alice", max_concurrent=1, max_queued=2)
        assert isinstance(slot, Slot)
        gone = scheduler.admit("bob", max_concurrent=1, max_queued=2)
        kept = scheduler.admit("carol", max_concurrent=1, max_queued=2)
        assert isinstance(gone, asyncio.Future) and isinstance(kept, asyncio.Future)
        scheduler.leave("bob", gone)
        assert gone.cancelled()
        scheduler.release(slot)
        assert kept.done() and not kept.cancelled()
        assert scheduler.queued == 0 and scheduler.active == 1
        # A granted run whose client went away gives its slot back too.
        scheduler.leave("carol", kept)
        assert scheduler.active == 0

    _run(scenario())


def test_the_service_names_both_settings_with_its_prefix() -> None:
    with pytest.raises(InvalidValueError) as caught:
        Policy({"default_memory": "2g", "max_memory": "1g"}, prefix="SandboxService.")
    message = str(caught.value)
    assert "SandboxService.default_memory" in message
    assert "SandboxService.max_memory" in message
    with pytest.raises(InvalidValueError, match=r"SandboxService\.group_settings\['ta'\]"):
        Policy({}, {"ta": {"default_timeout": -1}}, prefix="SandboxService.")
