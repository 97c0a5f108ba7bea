"""The Kubernetes engine through the real client, over real HTTP, against an emulated cluster.

The API server and the test kubelet are :mod:`kubeemu`'s, on 127.0.0.1: each Pod
the engine creates runs as a container on the local Docker engine, translated
from its spec, and its status comes back through the watch. The test kubelet is
not a real kubelet (see :mod:`kubeemu`). Tests against a real cluster are at the
end, marked ``kubernetes_cluster``: they run when ``KUBECONFIG`` (or
``CODEDOCK_TEST_KUBECONFIG``) names a cluster's kubeconfig, and skip here with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from jupyter_client.manager import KernelManager

from codedock_magic import (
    DEFAULT_IMAGE,
    CodedockError,
    DockerEngine,
    Limits,
    Pool,
    RunStatus,
    ServiceBackend,
    Verdict,
    check,
    run,
)
from codedock_magic.core.errors import EngineError
from codedock_magic.core.profile import Profile
from codedock_magic.engines.base import SandboxSpec
from codedock_magic.engines.kubernetes.engine import KubernetesEngine
from codedock_magic.engines.kubernetes.pods import build_pod, hardening_faults
from codedock_magic.engines.labels import OWNER_PID, SESSION, SESSION_ID, make_labels

from .kernelhelp import execute, wait_for_output
from .kubeemu import NAMESPACE, Emulator
from .servicehelp import Service, auth, wait_for

MB = 1024**2
STUCK_IMAGE = "codedock/never-scheduled:1"
LIMITS = Limits(timeout=20)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"/>'


@pytest.fixture(scope="module")
def emulator(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The emulated API server and test kubelet; needs the real Docker engine and image."""
    emulated = Emulator(tmp_path_factory.mktemp("kube"), unschedulable={STUCK_IMAGE}).start()
    yield emulated
    emulated.stop()


@pytest.fixture(scope="module")
def kube(emulator: Emulator) -> KubernetesEngine:
    """The Kubernetes engine, configured by the emulator's kubeconfig alone."""
    return KubernetesEngine(kubeconfig=str(emulator.kubeconfig), start_deadline=60)


def _gone(emulator: Emulator, within: float) -> bool:
    give_up = time.monotonic() + within
    while emulator.pods():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.05)
    return True


def test_the_engine_reads_the_kubeconfig_and_its_contexts_namespace(
    kube: KubernetesEngine, emulator: Emulator
) -> None:
    kube.ping()
    assert kube.namespace == NAMESPACE
    assert kube.address == emulator.url


def test_ok_error_and_output_come_back_and_the_pod_is_deleted(
    kube: KubernetesEngine, emulator: Emulator
) -> None:
    ok = run("import os\nprint('hello', os.getuid())", engine=kube, limits=LIMITS)
    assert ok.status is RunStatus.OK, ok.stderr
    assert ok.stdout == "hello 65534\n"
    error = run("import sys\nprint('out')\nsys.exit('bad input')", engine=kube, limits=LIMITS)
    assert error.status is RunStatus.ERROR
    assert error.stdout == "out\n" and "bad input" in error.stderr
    assert _gone(emulator, 5), emulator.pods()


def test_stdin_reaches_the_program(kube: KubernetesEngine) -> None:
    result = run("import sys\nprint(sys.stdin.read()[::-1])", stdin="abc", engine=kube)
    assert result.ok, result.stderr
    assert result.stdout == "cba\n"


def test_timeout_stops_a_busy_loop_and_keeps_earlier_output(
    kube: KubernetesEngine, emulator: Emulator
) -> None:
    start = time.monotonic()
    result = run(
        "print('before', flush=True)\nwhile True:\n    pass",
        engine=kube,
        limits=Limits(timeout=1),
    )
    assert result.status is RunStatus.TIMEOUT
    assert result.stdout == "before\n"
    assert time.monotonic() - start < 15
    assert _gone(emulator, 5), emulator.pods()


def test_memory_limit_is_reported_as_such(kube: KubernetesEngine) -> None:
    hog = "hog = bytearray(200 * 1024 * 1024)\nfor i in range(0, len(hog), 4096):\n    hog[i] = 1"
    result = run(hog, engine=kube, limits=Limits(timeout=20, memory="100m"))
    assert result.status is RunStatus.MEMORY_LIMIT, (result.status, result.stderr)


def test_keyboard_interrupt_stops_the_run_and_deletes_the_pod(
    kube: KubernetesEngine, emulator: Emulator
) -> None:
    timer = threading.Timer(2.0, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    result = run(
        "import time\nprint('started', flush=True)\ntime.sleep(60)",
        engine=kube,
        limits=Limits(timeout=60),
    )
    assert result.status is RunStatus.INTERRUPTED
    assert result.stdout == "started\n"
    assert _gone(emulator, 5), emulator.pods()


def test_the_program_cannot_write_into_its_supervisors_stream(kube: KubernetesEngine) -> None:
    # In a Pod the program shares its supervisor's uid: a forger would write frames
    # straight into the supervisor's stdout, the host's stream.
    attack = """
import os
for target in ("/proc/1/fd/1", "/proc/1/fd/0", "/proc/1/mem"):
    try:
        os.close(os.open(target, os.O_WRONLY))
        print("opened", target)
    except OSError as exc:
        print("refused", target, type(exc).__name__)
"""
    result = run(attack, engine=kube, limits=LIMITS)
    assert result.ok, result.stderr
    assert "opened" not in result.stdout, result.stdout


def test_the_program_cannot_read_trace_or_interrupt_its_supervisor(kube: KubernetesEngine) -> None:
    # Reading the supervisor's stdin would steal the next case's input; SIGINT is
    # the one signal PID 1 does not shield a Python process from.
    attack = """
import ctypes, os, signal, time
for target in ("/proc/1/fd/0", "/proc/1/fd/1", "/proc/1/mem", "/proc/1/environ"):
    try:
        os.close(os.open(target, os.O_RDONLY))
        print("opened", target)
    except OSError as exc:
        print("refused", target, type(exc).__name__)
libc = ctypes.CDLL(None, use_errno=True)
print("ptraced" if libc.ptrace(16, 1, 0, 0) == 0 else "ptrace refused")
os.kill(1, signal.SIGINT)
time.sleep(0.5)
print("still here")
"""
    result = run(attack, engine=kube, limits=LIMITS)
    assert result.ok, (result.status, result.stderr)
    assert "opened" not in result.stdout and "ptraced" not in result.stdout, result.stdout
    assert result.stdout.endswith("still here\n"), result.stdout


def test_usage_is_reported_as_on_docker(kube: KubernetesEngine) -> None:
    hog = "hog = bytearray(50 * 1024 * 1024)\nfor i in range(0, len(hog), 4096):\n    hog[i] = 1"
    idle = run("pass", engine=kube, limits=LIMITS)
    busy = run(hog, engine=kube, limits=LIMITS)
    assert idle.peak_memory is not None and busy.peak_memory is not None
    assert abs(busy.peak_memory - idle.peak_memory - 50 * MB) <= 0.2 * 50 * MB
    assert busy.cpu_seconds is not None and busy.cpu_seconds > 0


def test_images_and_files_in_and_out(kube: KubernetesEngine) -> None:
    code = (
        "import os\nos.makedirs('out', exist_ok=True)\n"
        f"display({SVG!r})\n"
        "data = open('data.txt').read()\nopen('out/upper.txt', 'w').write(data.upper())"
    )
    result = run(code, files={"data.txt": "abc"}, engine=kube, limits=LIMITS)
    assert result.ok, result.stderr
    assert result.files == {"upper.txt": b"ABC"}
    assert result.images == (("image/svg+xml", SVG),)


def test_cases_are_judged(kube: KubernetesEngine) -> None:
    cases = [
        {"name": "sum", "stdin": "2 2", "expected": "4\n"},
        {"name": "wrong", "stdin": "2 3", "expected": "6\n"},
        {"name": "hidden", "stdin": "1 1", "expected": "2\n", "hidden": True},
    ]
    result = check("print(sum(map(int, input().split())))", cases, engine=kube, limits=LIMITS)
    assert [case.verdict for case in result.cases] == [
        Verdict.PASSED,
        Verdict.WRONG_ANSWER,
        Verdict.PASSED,
    ]


def test_a_warm_pool_of_pods_serves_a_run(kube: KubernetesEngine, emulator: Emulator) -> None:
    warm = Pool(kube, size=1).start()
    try:
        give_up = time.monotonic() + 60
        while not emulator.pods() and time.monotonic() < give_up:
            time.sleep(0.1)
        (pod,) = emulator.pods()
        assert warm.wait_ready(timeout=60), warm.last_error
        before = sum(emulator.cluster.requests.values())
        result = run("print('warm')", pool=warm, limits=LIMITS)
        assert result.ok, result.stderr
        # The waiting Pod ran it, and was deleted.
        assert warm.hits == 1
        assert wait_for(lambda: pod not in emulator.pods(), 5), emulator.pods()
    finally:
        warm.close()
    assert _gone(emulator, 10), emulator.pods()
    # The run itself: its Pod's deletion, and the refill's create, watch and attach.
    assert sum(emulator.cluster.requests.values()) - before <= 5


def test_a_pod_stuck_in_pending_gives_one_line_and_is_deleted(emulator: Emulator) -> None:
    impatient = KubernetesEngine(kubeconfig=str(emulator.kubeconfig), start_deadline=2)
    start = time.monotonic()
    with pytest.raises(EngineError) as stuck:
        run("print(1)", image=STUCK_IMAGE, engine=impatient, limits=LIMITS)
    line = str(stuck.value)
    assert "did not start within 2 s: Unschedulable: 0/1 nodes are available" in line
    assert "\n" not in line
    assert time.monotonic() - start < 10
    assert _gone(emulator, 5), emulator.pods()


def test_the_test_kubelet_refuses_a_pod_without_its_hardening(
    kube: KubernetesEngine, emulator: Emulator
) -> None:
    pod = build_pod(SandboxSpec(Profile(), ["python3"], lifetime=30), kube.pod_options)
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    del pod["spec"]["dnsConfig"]
    assert len(hardening_faults(pod)) == 2
    with pytest.raises(Exception) as refused:
        kube.api.create_namespaced_pod(kube.namespace, pod)
    assert getattr(refused.value, "status", None) == 403
    assert emulator.cluster.refused[-1] == hardening_faults(pod)
    assert emulator.pods() == []


CLIENT = """
import sys, time
from codedock_magic import Limits, run
from codedock_magic.engines.kubernetes.engine import KubernetesEngine
engine = KubernetesEngine(kubeconfig=sys.argv[1])
run("import time\\nprint('running', flush=True)\\ntime.sleep(120)",
    engine=engine, limits=Limits(timeout=120),
    on_output=lambda stream, text: print(text, end='', flush=True))
"""


def test_a_killed_client_leaves_no_pod_after_5_seconds(emulator: Emulator) -> None:
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(emulator.kubeconfig)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        assert client.stdout.readline() == "running\n"
        assert emulator.pods()
        # Its watchdog loads the client (seconds of CPU) while the client lives.
        time.sleep(8)
        client.send_signal(signal.SIGKILL)
        client.wait(10)
        assert _gone(emulator, 5), emulator.pods()
    finally:
        if client.poll() is None:
            client.kill()


# --- the magic in a real kernel with engine = "kubernetes" ---------------------------


def _kernel(
    emulator: Emulator, service: Service | None = None, **options: object
) -> tuple[KernelManager, Any]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CODEDOCK_SERVICE")},
        "CODEDOCK_ENGINE": "kubernetes",
        "CODEDOCK_ENGINE_OPTIONS": json.dumps({"kubeconfig": str(emulator.kubeconfig), **options}),
    }
    if service is not None:
        env.update(CODEDOCK_SERVICE_URL=service.url, CODEDOCK_SERVICE_TOKEN="tok-alice")
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    # No warm pool but where a test asks for one: every Pod is then a cell's.
    setup = "%load_ext codedock_magic\n%config SandboxMagics.pool_size = 0"
    reply = client.execute_interactive(setup, timeout=60)
    assert reply["content"]["status"] == "ok"
    return manager, client


def _shut(manager: KernelManager, client: Any) -> None:
    client.stop_channels()
    if manager.is_alive():
        manager.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel(emulator: Emulator) -> Iterator[tuple[KernelManager, Any]]:
    """A real kernel whose cells run on the emulated cluster's Pods."""
    manager, client = _kernel(emulator)
    yield manager, client
    _shut(manager, client)


HOG = "b = bytearray(200 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1"


@pytest.mark.parametrize(
    ("line", "body", "status", "seen"),
    [
        ("--stdin given", "print(input()[::-1])", "ok", "cba\n[sandbox] ok · "),
        ("", "import sys\nprint('out')\nsys.exit(3)", "error", "out\n[sandbox] error (exit 3)"),
        ("--timeout 1", "while True: pass", "error", "[sandbox] timeout after 1s"),
        ("--mem 100m", HOG, "error", "[sandbox] memory limit (100m) exceeded"),
    ],
    ids=["ok-stdin", "error", "timeout", "memory"],
)
def test_the_magic_in_a_kernel_runs_cells_on_pods(
    kernel: tuple[KernelManager, Any],
    emulator: Emulator,
    line: str,
    body: str,
    status: str,
    seen: str,
) -> None:
    _, client = kernel
    execute(client, "given = 'abc\\n'")
    content, shown = execute(client, f"%%sandbox --no-widgets {line}\n{body}")
    assert content["status"] == status, shown
    assert seen in shown, shown
    # Usage, as on Docker: the status line names the CPU time and peak memory.
    assert " · cpu " in shown and " · peak " in shown, shown
    assert _gone(emulator, 5), emulator.pods()


def test_the_magic_judges_cases_and_brings_back_images_and_files_from_a_pod(
    kernel: tuple[KernelManager, Any],
) -> None:
    _, client = kernel
    execute(
        client, "cases = [{'stdin': '2', 'expected': '4\\n'}, {'stdin': '3', 'expected': '7\\n'}]"
    )
    content, shown = execute(
        client, "%%sandbox --no-widgets --cases cases\nprint(int(input()) * 2)"
    )
    assert content["status"] == "error" and "[sandbox] 1/2 passed" in shown, shown
    body = f"import os\ndisplay({SVG!r})\nos.mkdir('out')\nopen('out/a.txt', 'w').write('x')"
    content, shown = execute(client, f"%%sandbox --no-widgets\n{body}")
    assert content["status"] == "ok", shown
    assert "[sandbox] image: image/svg+xml" in shown and "[sandbox] file: out/a.txt" in shown


def test_the_magics_warm_pool_serves_a_cell_from_a_waiting_pod(
    kernel: tuple[KernelManager, Any], emulator: Emulator
) -> None:
    _, client = kernel
    execute(client, "%config SandboxMagics.pool_max = 0\n%config SandboxMagics.pool_size = 1")
    try:
        pool = "get_ipython().magics_manager.registry['SandboxMagics'].pool"
        ready = f"{pool}.wait_ready(timeout=60), {pool}.last_error"
        assert execute(client, ready)[1] == "(True, None)"
        waiting = set(emulator.pods())
        hits = int(execute(client, f"{pool}.hits")[1])
        content, shown = execute(client, "%%sandbox --no-widgets\nprint('warm')")
        assert content["status"] == "ok" and "warm" in shown, shown
        assert int(execute(client, f"{pool}.hits")[1]) == hits + 1
        # A waiting Pod ran the cell, and was deleted.
        assert wait_for(lambda: not waiting <= set(emulator.pods()), 5), (waiting, emulator.pods())
    finally:
        execute(client, "%config SandboxMagics.pool_size = 0")
    assert _gone(emulator, 10), emulator.pods()


def test_the_kernels_interrupt_stops_the_run_and_deletes_its_pod(
    kernel: tuple[KernelManager, Any], emulator: Emulator
) -> None:
    manager, client = kernel
    msg_id = client.execute(
        "%%sandbox --no-widgets --timeout 60\nimport time\nprint('up', flush=True)\ntime.sleep(60)"
    )
    wait_for_output(client, "up")
    assert emulator.pods()
    manager.interrupt_kernel()
    reply = client.get_shell_msg(timeout=15)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert "interrupted" in reply["content"]["evalue"]
    assert _gone(emulator, 5), emulator.pods()
    content, shown = execute(client, "%%sandbox --no-widgets\nprint('still here')")
    assert content["status"] == "ok" and "still here" in shown


def test_in_a_kernel_a_stuck_pod_is_one_line_and_a_killed_kernel_leaves_no_pod(
    emulator: Emulator,
) -> None:
    manager, client = _kernel(emulator, start_deadline=4)
    try:
        content, shown = execute(client, f"%%sandbox --no-widgets --image {STUCK_IMAGE}\nprint(1)")
        assert content["status"] == "error"
        (line,) = [text for text in shown.splitlines() if "did not start" in text]
        assert "did not start within 4 s: Unschedulable: 0/1 nodes are available" in line
        assert _gone(emulator, 5), emulator.pods()
        client.execute(
            "%%sandbox --timeout 60\nimport time\nprint('up', flush=True)\ntime.sleep(60)"
        )
        wait_for_output(client, "up")
        assert emulator.pods()
        os.kill(int(manager.provisioner.process.pid), signal.SIGKILL)  # type: ignore[union-attr]
        assert _gone(emulator, 5), emulator.pods()
    finally:
        _shut(manager, client)


# --- codedock serve with engine = "kubernetes" -------------------------------------


def _service(tmp_path: Path, emulator: Emulator, **settings: object) -> Service:
    return Service(
        tmp_path,
        engine="kubernetes",
        engine_options={"kubeconfig": str(emulator.kubeconfig)},
        **settings,
    ).start()


def _pool_ready(service: Service) -> float:
    metrics = requests.get(service.url + "/metrics", headers=auth("tok-metrics"), timeout=5).text
    line = next(line for line in metrics.splitlines() if line.startswith("codedock_pool_ready"))
    return float(line.split()[-1])


def test_the_service_runs_on_pods_and_keeps_its_ceilings(
    tmp_path: Path, emulator: Emulator
) -> None:
    service = _service(tmp_path, emulator, pool_size=1)
    try:
        alice = ServiceBackend(service.url, "tok-alice")
        assert wait_for(lambda: _pool_ready(service) == 1, 60), emulator.pods()
        (waiting,) = emulator.pods()
        ok = run("import sys\nprint(input()[::-1])", stdin="abc\n", backend=alice)
        assert ok.status is RunStatus.OK and ok.stdout == "cba\n", ok.stderr
        assert ok.cpu_seconds is not None and ok.peak_memory is not None
        # The warm pool's Pod ran it, and was deleted.
        assert wait_for(lambda: waiting not in emulator.pods(), 5), emulator.pods()
        error = run("raise SystemExit(3)", backend=alice)
        assert error.status is RunStatus.ERROR
        late = run("while True:\n    pass", limits=Limits(timeout=1), backend=alice)
        assert late.status is RunStatus.TIMEOUT
        hog = "b = bytearray(200 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1"
        oom = run(hog, limits=Limits(memory="100m", timeout=20), backend=alice)
        assert oom.status is RunStatus.MEMORY_LIMIT
        assert oom.peak_memory is not None
        judged = check(
            "print(int(input()) * 2)", [{"stdin": "2", "expected": "4\n"}], backend=alice
        )
        assert [case.verdict for case in judged.cases] == [Verdict.PASSED]
        code = (
            f"import os\ndisplay({SVG!r})\nos.makedirs('out')\n"
            "open('out/a.txt', 'w').write(open('in.txt').read())"
        )
        moved = run(code, files={"in.txt": "x"}, backend=alice)
        assert moved.ok and moved.files == {"a.txt": b"x"}, moved.stderr
        assert moved.images == (("image/svg+xml", SVG),)
        with pytest.raises(CodedockError):
            run("print(1)", limits=Limits(memory="64g"), backend=alice)
    finally:
        service.stop()
    assert _gone(emulator, 10), emulator.pods()


@pytest.fixture(scope="module")
def service(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``codedock serve`` on the emulated cluster, without a pool: every Pod is a run's."""
    started = _service(tmp_path_factory.mktemp("kserve"), emulator, pool_size=0)
    yield started
    started.stop()


def _events(response: requests.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line:
            yield json.loads(line)


def test_a_cancelled_run_through_the_service_deletes_its_pod(
    service: Service, emulator: Emulator
) -> None:
    code = "import time\nprint('up', flush=True)\ntime.sleep(60)"
    body = {"code": base64.b64encode(code.encode()).decode(), "stdin": ""}
    response = requests.post(
        service.url + "/api/runs", json=body, headers=auth("tok-alice"), stream=True, timeout=30
    )
    try:
        events = _events(response)
        run_id = next(events)["id"]
        assert next(event for event in events if event["event"] == "output")["text"].startswith(
            "up"
        )
        assert emulator.pods()
        cancelled = requests.delete(
            f"{service.url}/api/runs/{run_id}", headers=auth("tok-alice"), timeout=5
        )
        assert cancelled.status_code == 204
        last = list(events)[-1]
        assert last["event"] == "result" and last["result"]["status"] == "interrupted", last
        assert _gone(emulator, 5), emulator.pods()
    finally:
        response.close()


def test_a_kernels_interrupt_against_the_service_deletes_its_pod(
    service: Service, emulator: Emulator
) -> None:
    manager, client = _kernel(emulator, service)
    try:
        msg_id = client.execute(
            "%%sandbox --no-widgets --timeout 20\nimport time\nprint('up', flush=True)\n"
            "time.sleep(20)"
        )
        wait_for_output(client, "up")
        assert emulator.pods()
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=15)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert "interrupted" in reply["content"]["evalue"]
        assert _gone(emulator, 5), emulator.pods()
    finally:
        _shut(manager, client)


SERVICE_CLIENT = """
import sys
from codedock_magic import Limits, ServiceBackend, run
run("import time\\nprint('running', flush=True)\\ntime.sleep(120)",
    backend=ServiceBackend(sys.argv[1], "tok-bob"), limits=Limits(timeout=60),
    on_output=lambda stream, text: print(text, end='', flush=True))
"""


def test_a_killed_client_of_the_service_leaves_no_pod_after_5_seconds(
    service: Service, emulator: Emulator
) -> None:
    client = subprocess.Popen(
        [sys.executable, "-c", SERVICE_CLIENT, service.url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert client.stdout is not None
        assert client.stdout.readline() == "running\n"
        assert emulator.pods()
        client.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        client.wait(10)
        assert _gone(emulator, 5), emulator.pods()
        assert time.monotonic() - killed < 5
    finally:
        if client.poll() is None:
            client.kill()


def test_a_pod_stuck_in_pending_through_the_service_is_one_line_and_deleted(
    tmp_path: Path, emulator: Emulator
) -> None:
    impatient = Service(
        tmp_path,
        engine="kubernetes",
        engine_options={"kubeconfig": str(emulator.kubeconfig), "start_deadline": 2},
        allowed_images=[DEFAULT_IMAGE, STUCK_IMAGE],
        pool_size=0,
    ).start()
    try:
        with pytest.raises(CodedockError) as stuck:
            run("print(1)", image=STUCK_IMAGE, backend=ServiceBackend(impatient.url, "tok-alice"))
        line = str(stuck.value)
        assert "did not start within 2 s: Unschedulable: 0/1 nodes are available" in line
        assert "\n" not in line
        assert _gone(emulator, 5), emulator.pods()
    finally:
        impatient.stop()


def test_a_restarted_service_sweeps_its_orphaned_pods(
    tmp_path: Path, emulator: Emulator, kube: KubernetesEngine
) -> None:
    # A Pod left by a service on this host that died before its watchdog could
    # act: its owner's pid is gone.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    labels = {**make_labels(600, engine="kubernetes"), OWNER_PID: str(dead.pid)}
    spec = SandboxSpec(Profile(), ["python3", "-c", "import time; time.sleep(60)"], labels, 600)
    orphan = kube.api.create_namespaced_pod(kube.namespace, build_pod(spec, kube.pod_options))
    name = orphan.metadata.name
    assert wait_for(lambda: name in emulator.pods(), 5)
    service = _service(tmp_path, emulator, pool_size=0)
    try:
        assert wait_for(lambda: name not in emulator.pods(), 15), emulator.pods()
    finally:
        service.stop()


# --- a real cluster ------------------------------------------------------------------

REAL = os.environ.get("CODEDOCK_TEST_KUBECONFIG") or os.environ.get("KUBECONFIG", "")


@pytest.mark.kubernetes_cluster
@pytest.mark.skipif(
    not REAL,
    reason="no real cluster here: set KUBECONFIG (or CODEDOCK_TEST_KUBECONFIG) to a kind, k3s "
    "or cloud cluster's kubeconfig whose nodes hold the sandbox image",
)
def test_on_a_real_cluster_a_run_is_a_pod_and_leaves_none() -> None:
    real = KubernetesEngine(kubeconfig=REAL, start_deadline=120)
    result = run("import os\nprint(os.getuid())", engine=real, limits=Limits(timeout=30))
    assert result.ok, result.stderr
    assert result.stdout == "65534\n"
    give_up = time.monotonic() + 30
    while real.list({SESSION: SESSION_ID}) and time.monotonic() < give_up:
        time.sleep(0.5)
    assert real.list({SESSION: SESSION_ID}) == []
