"""With no engine: the uid range sandboxes take their uids from, engine options from the
environment, and how the doctor judges what gVisor shows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codedock_magic.core.errors import InvalidValueError
from codedock_magic.engines.base import MASKED_PATHS
from codedock_magic.engines.docker import DockerEngine
from codedock_magic.engines.uids import DEFAULT_UID_RANGE, UidRange, uid_name


@given(
    first=st.integers(1, 2**32 - 2),
    size=st.integers(1, 300),
    taken=st.sets(st.integers(0, 310), max_size=50),
)
def test_candidates_visit_every_free_uid_of_the_range_once(
    first: int, size: int, taken: set[int]
) -> None:
    last = min(first + size - 1, 2**32 - 2)
    uids = UidRange(first, last)
    busy = {first + offset for offset in taken}
    tried = list(uids.candidates(busy))
    assert len(tried) == len(set(tried))
    assert set(tried) == set(range(first, last + 1)) - busy


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30000-59999", UidRange(30000, 59999)),
        (" 100 - 200 ", UidRange(100, 200)),
        ([5, 9], UidRange(5, 9)),
        ((7, 7), UidRange(7, 7)),
        (61000, UidRange(61000, 61000)),
        ("61000", UidRange(61000, 61000)),
    ],
)
def test_a_range_is_read_from_a_string_a_pair_or_one_uid(value: object, expected: UidRange) -> None:
    assert UidRange.parse(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "0-10",
        "10-5",
        "a-b",
        "",
        "1-2-3",
        [1.5, 3],
        [1, 2, 3],
        True,
        None,
        {"first": 1},
        "1-4294967295",
    ],
)
def test_a_range_that_is_not_one_of_uids_above_root_is_refused(value: object) -> None:
    with pytest.raises(InvalidValueError, match="uid_range"):
        UidRange.parse(value)


def test_the_docker_engine_takes_the_range_as_an_option_and_hands_it_to_its_watchdog() -> None:
    assert str(DockerEngine().uids) == DEFAULT_UID_RANGE
    assert "uid_range" not in DockerEngine().options
    narrow = DockerEngine(uid_range=[40000, 40009])
    assert len(narrow.uids) == 10 and narrow.options["uid_range"] == "40000-40009"
    with pytest.raises(InvalidValueError, match="uid_range"):
        DockerEngine(uid_range="0-9")
    assert uid_name(40000) == "codedock-uid-40000"


def test_engine_options_come_from_the_environment_when_no_setting_gives_any(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from codedock_magic.engines import connect
    from codedock_magic.engines.registry import ENGINE_OPTIONS_ENV, engine_options

    monkeypatch.setenv(ENGINE_OPTIONS_ENV, '{"runtime": "runsc", "uid_range": "40000-40099"}')
    assert engine_options() == {"runtime": "runsc", "uid_range": "40000-40099"}
    assert engine_options({"runtime": "runc"}) == {"runtime": "runc"}
    engine = connect("docker")
    assert isinstance(engine, DockerEngine) and engine.gvisor and len(engine.uids) == 100
    # gVisor's threads count in the container's pids; the program keeps its own bound.
    assert engine.host_pids(64) == 64 + 16 * 64 and DockerEngine().host_pids(64) == 64
    for broken in ("[1, 2]", "runtime=runsc", "{"):
        monkeypatch.setenv(ENGINE_OPTIONS_ENV, broken)
        with pytest.raises(InvalidValueError, match=ENGINE_OPTIONS_ENV):
            engine_options()


def test_the_doctor_judges_what_gvisor_shows() -> None:
    from codedock_magic import Limits
    from codedock_magic.doctor import check

    limits = Limits(memory="256m", pids=64)
    facts = {
        "gvisor": True,
        "interfaces": ["lo"],
        "uid": 40001,
        "euid": 40001,
        "CapEff": "0000000000000000",
        "CapPrm": "0000000000000000",
        "NoNewPrivs": "",
        "no_new_privs": 1,
        "nproc": 64,
        "mount_root": "ro",
        "root_write": 13,
        "mem_total_kb": 256 * 1024,
        "swap_total": "0",
        "cgroup": {},
        "machine": "x86_64",
        "io_uring": [-1, 1],
        "x32": [-1, 1],
        "Seccomp": "2",
        "cgroup_mounts": {},
        "cgroup_write": 13,
        "cgroup_dir_write": 13,
        "masked": dict.fromkeys(MASKED_PATHS, "open"),
    }
    assert all(finding.ok for finding in check(facts, limits)), check(facts, limits)
    # The same facts without gVisor do not pass: no cgroup, nothing masked.
    failed = {f.promise for f in check({**facts, "gvisor": False}, limits) if not f.ok}
    assert {"the pids limit", "host paths are masked", "no-new-privileges"} <= failed
    # And under gVisor a looser limit is still caught.
    loose = check({**facts, "nproc": 128, "mem_total_kb": 512 * 1024}, limits)
    assert {f.promise for f in loose if not f.ok} == {
        "the pids limit",
        "the memory limit, with no swap",
    }
