"""Sandboxes never share a uid, so one cannot spend another's per-uid kernel quotas."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from codedock_magic import DockerEngine, Limits, Profile, RunResult, RunStatus, check, run
from codedock_magic.engines.uids import UID_LABEL
from codedock_magic.labels import SESSION, SESSION_ID
from codedock_magic.local.pool import Pool
from codedock_magic.local.sandbox import start_sandbox

# The per-uid quota is the kernel's (fs.inotify.max_user_instances, 128 on most
# hosts): the hog takes every instance its uid may have, whatever the number.
HOG_INOTIFY = textwrap.dedent(
    """
    import ctypes, os, sys, time
    libc = ctypes.CDLL(None, use_errno=True)
    held = []
    while True:
        fd = libc.inotify_init1(0)
        if fd < 0:
            break
        held.append(fd)
    print('held', len(held), os.strerror(ctypes.get_errno()), os.getuid(), flush=True)
    time.sleep(60)
    """
)
WANT_INOTIFY = textwrap.dedent(
    """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0)
    print('got' if fd >= 0 else 'denied ' + os.strerror(ctypes.get_errno()), os.getuid())
    """
)
# RLIMIT_MSGQUEUE (819200 bytes by default) counts every queue of a uid, on the
# whole host: the hog makes queues until the kernel refuses one.
HOG_MQUEUE = textwrap.dedent(
    """
    import ctypes, os, sys, time
    rt = ctypes.CDLL('librt.so.1', use_errno=True)
    class Attr(ctypes.Structure):
        _fields_ = [(name, ctypes.c_long) for name in ('flags', 'maxmsg', 'msgsize', 'cur')]
        _fields_ += [('pad', ctypes.c_long * 4)]
    held = 0
    while held < 10000:
        attr = Attr(0, 10, 8192, 0)
        fd = rt.mq_open(f'/hog{held}'.encode(), os.O_CREAT | os.O_RDWR, 0o600, ctypes.byref(attr))
        if fd < 0:
            break
        held += 1
    print('held', held, os.strerror(ctypes.get_errno()), os.getuid(), flush=True)
    time.sleep(60)
    """
)
WANT_MQUEUE = textwrap.dedent(
    """
    import ctypes, os
    rt = ctypes.CDLL('librt.so.1', use_errno=True)
    class Attr(ctypes.Structure):
        _fields_ = [(name, ctypes.c_long) for name in ('flags', 'maxmsg', 'msgsize', 'cur')]
        _fields_ += [('pad', ctypes.c_long * 4)]
    attr = Attr(0, 10, 8192, 0)
    fd = rt.mq_open(b'/mine', os.O_CREAT | os.O_RDWR, 0o600, ctypes.byref(attr))
    print('got' if fd >= 0 else 'denied ' + os.strerror(ctypes.get_errno()), os.getuid())
    """
)


# How long the hog holds its quota before its timeout ends it.
HOLD = 12


@pytest.mark.parametrize(
    ("hog_code", "want_code"),
    [(HOG_INOTIFY, WANT_INOTIFY), (HOG_MQUEUE, WANT_MQUEUE)],
    ids=["inotify-instances", "mqueue-bytes"],
)
def test_a_sandbox_that_spends_its_uids_quota_leaves_another_its_own(
    engine: DockerEngine, hog_code: str, want_code: str
) -> None:
    held = threading.Event()
    said: list[str] = []
    results: list[RunResult] = []

    def on_output(stream: str, text: str) -> None:
        said.append(text)
        if "".join(said).endswith("\n"):
            held.set()

    def spend() -> None:
        results.append(
            run(
                hog_code,
                engine=engine,
                limits=Limits(timeout=HOLD),
                on_output=on_output,
            )
        )

    hogging = threading.Thread(target=spend, daemon=True)
    hogging.start()
    try:
        assert held.wait(60), f"the hog never said it held its quota: {said} {results}"
        words = "".join(said).split()
        assert int(words[1]) > 0, words
        hog_uid = int(words[-1])
        other = run(want_code, engine=engine, limits=Limits(timeout=30))
        assert other.status is RunStatus.OK, other.stderr
        verdict, uid = other.stdout.rsplit(" ", 1)
        assert verdict == "got", f"the hog's {words[1]} left nothing to another sandbox"
        assert int(uid) != hog_uid
    finally:
        hogging.join(HOLD + 30)
    assert results and results[0].status is RunStatus.TIMEOUT


def test_concurrent_sandboxes_of_two_processes_and_a_pool_have_uids_of_their_own(
    engine: DockerEngine,
) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from codedock_magic.engines import connect
                from codedock_magic import Profile
                from codedock_magic.local.sandbox import start_sandbox
                engine = connect()
                held = [start_sandbox(engine, Profile(), longest_run=30) for _ in range(4)]
                print(' '.join(str(s.uid) for s in held), flush=True)
                sys.stdin.read()
                for sandbox in held:
                    sandbox.end(wait=True)
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pool = Pool(engine, size=2).start()
    mine = []
    try:
        mine = [start_sandbox(engine, Profile(), longest_run=30) for _ in range(4)]
        assert pool.wait_ready(timeout=60), pool.last_error
        assert child.stdout is not None
        theirs = [int(uid) for uid in child.stdout.readline().split()]
        assert len(theirs) == 4
        ours_now = [s.uid for s in mine]
        pooled = [
            int(c.labels[UID_LABEL])
            for c in engine.list({SESSION: SESSION_ID})
            if c.id not in {s.id for s in mine}
        ]
        assert len(pooled) == 2
        every = ours_now + theirs + pooled
        assert len(set(every)) == len(every), every
        assert all(uid in engine.uids for uid in every)
        # And the engine's labels say the same as the sandboxes.
        labelled = {c.id: int(c.labels[UID_LABEL]) for c in engine.list({SESSION: SESSION_ID})}
        assert all(labelled[s.id] == s.uid for s in mine)
    finally:
        for sandbox in mine:
            sandbox.end(kill=True, wait=True)
        pool.close()
        assert child.stdin is not None
        child.stdin.close()
        child.wait(60)
    assert child.returncode == 0


def test_the_program_runs_as_its_sandboxs_uid_and_owns_its_work_dir(
    engine: DockerEngine,
) -> None:
    result = run(
        "import os\n"
        "st = os.stat('/sandbox')\n"
        "print(os.getuid(), os.geteuid(), os.getgid(), st.st_uid, st.st_gid)\n",
        engine=engine,
    )
    assert result.status is RunStatus.OK, result.stderr
    uid, euid, gid, owner, group = result.stdout.split()
    assert uid == euid == gid == owner == group
    assert int(uid) in engine.uids and int(uid) != 65534


def test_cases_kill_every_process_of_the_sandboxs_own_uid_between_cases(
    engine: DockerEngine,
) -> None:

    code = (
        "import os, subprocess, sys\n"
        "mine = [p for p in os.listdir('/proc') if p.isdigit() and\n"
        "        f'Uid:\\t{os.getuid()}' in open(f'/proc/{p}/status').read()]\n"
        "print(len(mine))\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
        "                 start_new_session=True)\n"
    )
    cases = [{"stdin": "", "expected": "1\n"}, {"stdin": "", "expected": "1\n"}]
    checked = check(code, cases, engine=engine)
    assert [c.passed for c in checked.cases] == [True, True], checked


def test_a_range_of_one_uid_takes_turns(engine: DockerEngine) -> None:
    narrow = DockerEngine(uid_range="61000-61000")
    first = start_sandbox(narrow, Profile(), longest_run=10)
    try:
        with pytest.raises(Exception, match="no free sandbox uid"):
            start_sandbox(narrow, Profile(), longest_run=10)
    finally:
        first.end(kill=True, wait=True)
    second = start_sandbox(narrow, Profile(), longest_run=10)
    assert second.uid == 61000
    second.end(kill=True, wait=True)
