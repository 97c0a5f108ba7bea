"""``codedock doctor``: each promise a sandbox makes, checked on this machine, now.

An administrator runs it after a deploy; ``%sandbox_doctor`` runs it from a
notebook. It asks the engine (or, in service mode, the service) what it can, then
runs a probe in a real sandbox, with the limits a cell would get, and reads the
facts from inside: interfaces, ids, capabilities, the file system, the cgroup's
limits, the seccomp filter and the masked host paths. Each promise becomes one
row, ok or a one-line reason; :func:`all_hold` says whether to exit 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .core.errors import CodedockError, ImageNotFoundError
from .core.limits import SIZES, Limits, format_size
from .core.profile import DEFAULT_IMAGE
from .core.request import Backend
from .engines import Engine, connect
from .engines.base import MASKED_PATHS
from .remote.client import ServiceBackend, service_from_env
from .runner import choose_backend, run

__all__ = ["PROBE", "Finding", "all_hold", "check", "diagnose", "parse_facts", "report"]

# Stand-alone: it runs with the image's python3, as the sandbox user, and prints
# one JSON object of facts on its last line. Judging them is the host's job, below.
_PROBE = r"""
import ctypes, errno, json, os, platform, resource, socket, stat

facts = {"uid": os.getuid(), "euid": os.geteuid(), "page": os.sysconf("SC_PAGE_SIZE")}
facts["interfaces"] = sorted(name for _, name in socket.if_nameindex())
status = {}
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    status[key] = value.strip()
for key in ("CapEff", "CapPrm", "NoNewPrivs", "Seccomp", "Seccomp_filters"):
    facts[key] = status.get(key, "")
libc = ctypes.CDLL(None, use_errno=True)

def call(number):
    ctypes.set_errno(0)
    return [libc.syscall(number, 0, 0), ctypes.get_errno()]

# io_uring_setup is 425 on x86_64 and aarch64 alike; the x32 getpid only exists
# on x86_64, and only our own filter refuses the x32 ABI.
facts["machine"] = platform.machine()
facts["io_uring"] = call(425)
facts["x32"] = call(39 | 0x40000000) if facts["machine"] == "x86_64" else None

def write_error(path, make=False):
    try:
        if make:
            os.mkdir(path)
        else:
            with open(path, "a"):
                pass
        return 0
    except OSError as exc:
        return exc.errno

facts["no_new_privs"] = libc.prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS
facts["nproc"] = resource.getrlimit(resource.RLIMIT_NPROC)[0]
facts["root_write"] = write_error("/codedock-doctor")
mounts = {}
for line in open("/proc/self/mountinfo"):
    fields = line.split()
    mounts[fields[4]] = (line.split(" - ")[1].split()[0], fields[5])
facts["mount_root"] = mounts.get("/", ("", ""))[1]
facts["cgroup_mounts"] = {
    point: options for point, (kind, options) in mounts.items() if kind in ("cgroup", "cgroup2")
}

def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None

# The container's own cgroup: its namespace's root, or (with the host's cgroup
# namespace) the path /proc/self/cgroup names.
own = [""]
for line in open("/proc/self/cgroup"):
    path = line.strip().split(":", 2)[-1]
    if path not in ("", "/") and path not in own:
        own.append(path)
cgroup = {}
for name, files in {
    "memory": [("", "memory.max"), ("memory", "memory.limit_in_bytes")],
    "swap": [("", "memory.swap.max")],
    "memsw": [("memory", "memory.memsw.limit_in_bytes")],
    "pids": [("", "pids.max"), ("pids", "pids.max")],
}.items():
    for where in (
        "/".join(part for part in ("/sys/fs/cgroup", controller, path.strip("/"), file) if part)
        for path in own
        for controller, file in files
    ):
        value = read(where)
        if value is not None:
            cgroup[name], cgroup[name + "_path"] = value, where
            break
facts["cgroup"] = cgroup
meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo") if ":" in line)
facts["swap_total"] = meminfo.get("SwapTotal", "0").split()[0]
facts["mem_total_kb"] = meminfo.get("MemTotal", "0").split()[0]
# gVisor, a kernel of its own: its /proc and /sys are its own, it shows no cgroup.
facts["gvisor"] = "gvisor" in (read("/proc/cmdline") or "")
facts["cgroup_write"] = write_error(cgroup.get("memory_path", "/sys/fs/cgroup/memory.max"))
facts["cgroup_dir_write"] = write_error("/sys/fs/cgroup/codedock-doctor", make=True)

# Masked: a file is /dev/null (char 1,3) bound over it, a folder an empty
# read-only tmpfs. Refused alone proves nothing: some are root's anyway.
masked = {}
for path in MASKED:
    try:
        seen = os.stat(path)
    except FileNotFoundError:
        masked[path] = "absent"
        continue
    except OSError as exc:
        masked[path] = errno.errorcode.get(exc.errno, str(exc.errno))
        continue
    kind, options = mounts.get(path, ("", ""))
    if stat.S_ISCHR(seen.st_mode) and (os.major(seen.st_rdev), os.minor(seen.st_rdev)) == (1, 3):
        masked[path] = "null"
    elif stat.S_ISDIR(seen.st_mode) and kind == "tmpfs" and "ro" in options.split(","):
        masked[path] = "empty" if not os.listdir(path) else "tmpfs with files"
    else:
        masked[path] = "open"
facts["masked"] = masked
print(json.dumps(facts))
"""
#: The program run in a sandbox to collect the facts, with the paths to look at.
PROBE = f"MASKED = {tuple(MASKED_PATHS)!r}\n" + _PROBE


@dataclass(frozen=True)
class Finding:
    """One promise and whether it holds.

    Attributes:
        promise: what is promised, in a few words.
        ok: whether it holds.
        detail: what was seen, or the one-line reason it does not hold.
    """

    promise: str
    ok: bool
    detail: str


def all_hold(findings: Sequence[Finding]) -> bool:
    """Whether every promise holds (``codedock doctor`` then exits 0)."""
    return bool(findings) and all(finding.ok for finding in findings)


def report(findings: Sequence[Finding]) -> str:
    """The findings as a table: a row each, then one line that sums them up."""
    width = max((len(finding.promise) for finding in findings), default=0)
    rows = [
        f"{'ok' if finding.ok else 'FAIL':<4}  {finding.promise:<{width}}  {finding.detail}"
        for finding in findings
    ]
    failed = sum(not finding.ok for finding in findings)
    rows.append(
        f"all {len(findings)} promises hold"
        if not failed
        else f"{failed} of {len(findings)} promises do not hold"
    )
    return "\n".join(rows)


def diagnose(
    *,
    image: str = DEFAULT_IMAGE,
    limits: Limits | None = None,
    engine: Engine | None = None,
    backend: Backend | None = None,
) -> list[Finding]:
    """Check every promise, as a cell with ``limits`` in ``image`` would meet them.

    Args:
        image: the image a cell runs in.
        limits: the limits a cell gets; :class:`Limits` defaults when omitted (a
            service applies its own defaults and says which).
        engine: the engine to check; by default the one from the environment,
            unless ``$CODEDOCK_SERVICE_URL`` names a service.
        backend: what runs cells (a kernel's own); a :class:`ServiceBackend`
            puts the service's rows first.

    Never raises for a failing promise: each becomes a :class:`Finding`.
    """
    findings: list[Finding] = []
    service = backend if isinstance(backend, ServiceBackend) else None
    if backend is None and engine is None:
        service = service_from_env()
        backend = service
    if service is not None:
        if not _service_rows(service, findings):
            return findings
    else:
        try:
            engine = engine or connect()
            engine.ping()
            findings.append(Finding("the engine answers", True, f"at {engine.address}"))
        except CodedockError as exc:
            findings.append(Finding("the engine answers", False, str(exc)))
            return findings
        try:
            present = engine.image_exists(image)
        except CodedockError as exc:
            present, why = False, str(exc)
        else:
            why = str(ImageNotFoundError(image))
        findings.append(Finding("the image is there", present, image if present else why))
        if not present:
            return findings
        backend = backend or choose_backend(engine=engine)
    try:
        result = run(PROBE, limits=limits, image=image, backend=backend)
    except CodedockError as exc:
        findings.append(Finding("a sandbox runs", False, str(exc)))
        return findings
    if not result.ok:
        tail = result.stderr.strip().splitlines()[-1:] or [""]
        findings.append(Finding("a sandbox runs", False, f"{result.describe()}: {tail[0]}"))
        return findings
    facts = parse_facts(result.stdout)
    if facts is None:
        shown = result.stdout.strip()[:80] or "nothing"
        findings.append(Finding("the probe reports", False, f"it printed {shown!r}, not its facts"))
        return findings
    findings.extend(check(facts, result.limits))
    return findings


def parse_facts(stdout: str) -> dict[str, Any] | None:
    """The probe's facts from its output, ``None`` when its last line is not a JSON object.

    Only the last line counts: an image may print something of its own at start.
    """
    lines = stdout.strip().splitlines()
    try:
        facts = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return facts if isinstance(facts, dict) else None


def _service_rows(service: ServiceBackend, findings: list[Finding]) -> bool:
    try:
        info = service.info()
    except CodedockError as exc:
        findings.append(Finding("the service answers", False, str(exc)))
        return False
    findings.append(Finding("the service answers", True, f"at {service.url}"))
    groups = ", ".join(info.get("groups") or []) or "none"
    findings.append(
        Finding("the user it sees", bool(info.get("user")), f"{info.get('user')} ({groups})")
    )
    ceilings = info.get("ceilings", {})
    shown = [
        f"max_{name}={_shown(name, value)}" for name, value in ceilings.items() if value is not None
    ]
    shown.append(f"allowed_images={info.get('allowed_images') or 'any'}")
    findings.append(Finding("its ceilings", True, ", ".join(shown)))
    return True


def _shown(name: str, value: Any) -> str:
    # The service sends every ceiling as a number; sizes are bytes.
    if name in SIZES:
        return format_size(int(value))
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def check(facts: dict[str, Any], limits: Limits) -> list[Finding]:
    """Judge the probe's facts against the promises and the limits the run was given."""
    rows: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
        ("no network but lo", lambda: _interfaces(facts)),
        ("not root", lambda: _not_root(facts)),
        ("no capabilities", lambda: _capabilities(facts)),
        ("no-new-privileges", lambda: _no_new_privileges(facts)),
        ("the root filesystem is read-only", lambda: _read_only(facts)),
        ("the memory limit, with no swap", lambda: _memory(facts, limits)),
        ("the pids limit", lambda: _pids(facts, limits)),
        ("the seccomp filter", lambda: _seccomp(facts)),
        ("/sys/fs/cgroup cannot be written", lambda: _cgroup_read_only(facts)),
        ("host paths are masked", lambda: _masked(facts)),
    ]
    findings = []
    for promise, judge in rows:
        try:
            ok, detail = judge()
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            ok, detail = False, f"the probe did not report it ({type(exc).__name__}: {exc})"
        findings.append(Finding(promise, ok, detail))
    return findings


def _interfaces(facts: dict[str, Any]) -> tuple[bool, str]:
    names = list(facts["interfaces"])
    return names == ["lo"], "interfaces: " + ", ".join(names)


def _not_root(facts: dict[str, Any]) -> tuple[bool, str]:
    uid, euid = int(facts["uid"]), int(facts["euid"])
    return uid != 0 and euid != 0, f"uid {uid}, euid {euid}"


def _capabilities(facts: dict[str, Any]) -> tuple[bool, str]:
    effective, permitted = int(facts["CapEff"], 16), int(facts["CapPrm"], 16)
    return (
        effective == permitted == 0,
        f"effective {facts['CapEff']}, permitted {facts['CapPrm']}",
    )


def _no_new_privileges(facts: dict[str, Any]) -> tuple[bool, str]:
    if facts.get("gvisor"):
        # gVisor's /proc/self/status has no NoNewPrivs line; prctl says it.
        flag = facts["no_new_privs"]
        return flag == 1, f"PR_GET_NO_NEW_PRIVS {flag} (gVisor)"
    return facts["NoNewPrivs"] == "1", f"NoNewPrivs {facts['NoNewPrivs']}"


def _read_only(facts: dict[str, Any]) -> tuple[bool, str]:
    # errno 30 is EROFS: the write was refused by the mount, not by permissions.
    options = str(facts["mount_root"]).split(",")
    # gVisor answers a write to its read-only root with EACCES (13).
    refusals = (30, 13) if facts.get("gvisor") else (30,)
    ok = int(facts["root_write"]) in refusals and "ro" in options
    return ok, f"mounted {facts['mount_root']}, a write got errno {facts['root_write']}"


def _memory(facts: dict[str, Any], limits: Limits) -> tuple[bool, str]:
    if facts.get("gvisor"):
        # gVisor shows no cgroup; its kernel's memory is the container's limit.
        total = int(facts["mem_total_kb"]) * 1024
        page = int(facts.get("page") or 4096)
        ok = limits.memory - page < total <= limits.memory and str(facts["swap_total"]) == "0"
        return ok, (
            f"{format_size(total)} in gVisor's /proc/meminfo (asked {format_size(limits.memory)}), "
            f"swap {facts['swap_total']} kB"
        )
    cgroup = facts["cgroup"]
    memory = cgroup["memory"]
    # The kernel rounds a limit down to whole pages.
    page = int(facts.get("page") or 4096)
    ok = memory.isdigit() and limits.memory - page < int(memory) <= limits.memory
    seen = f"{format_size(int(memory)) if memory.isdigit() else memory}"
    detail = f"{seen} (asked {format_size(limits.memory)})"
    if "swap" in cgroup:
        no_swap = cgroup["swap"] == "0"
        detail += f", swap {cgroup['swap']}"
    elif "memsw" in cgroup:
        no_swap = cgroup["memsw"] == memory
        memsw = cgroup["memsw"]
        detail += f", memory and swap {format_size(int(memsw)) if memsw.isdigit() else memsw}"
    else:
        # No swap accounting: only a host without swap keeps the promise.
        no_swap = str(facts["swap_total"]) == "0"
        detail += f", swap not accounted, the host has {facts['swap_total']} kB"
    return ok and no_swap, detail


def _pids(facts: dict[str, Any], limits: Limits) -> tuple[bool, str]:
    if facts.get("gvisor"):
        # The container's pids count gVisor's own threads; the program's own uid's
        # RLIMIT_NPROC, which gVisor enforces, is its bound.
        nproc = int(facts["nproc"])
        return nproc == limits.pids, f"RLIMIT_NPROC {nproc} (asked {limits.pids}; gVisor)"
    pids = facts["cgroup"]["pids"]
    return pids.isdigit() and int(pids) == limits.pids, f"{pids} (asked {limits.pids})"


def _seccomp(facts: dict[str, Any]) -> tuple[bool, str]:
    eperm = [-1, 1]  # the call failed with EPERM: a filter said no
    refused = {"io_uring_setup": facts["io_uring"] == eperm}
    if facts["machine"] == "x86_64":
        # Only our own filter refuses the x32 ABI; the engine's default allows it.
        refused["an x32 call"] = facts["x32"] == eperm
    ok = facts["Seccomp"] == "2" and all(refused.values())
    allowed = [name for name, no in refused.items() if not no]
    return ok, (
        f"mode {facts['Seccomp']}, {facts.get('Seccomp_filters') or '?'} filter(s); "
        + (f"allowed: {', '.join(allowed)}" if allowed else f"refused: {', '.join(refused)}")
    )


def _cgroup_read_only(facts: dict[str, Any]) -> tuple[bool, str]:
    # The cgroup file systems refuse by their mounts, not only by their files' owner.
    mounts: dict[str, str] = facts["cgroup_mounts"]
    writable = [path for path, options in mounts.items() if "ro" not in options.split(",")]
    refused, refused_dir = int(facts["cgroup_write"]), int(facts["cgroup_dir_write"])
    if writable:
        return False, "mounted read-write: " + ", ".join(sorted(writable))
    if not refused:
        return False, "a write to its memory limit went through"
    if not refused_dir:
        return False, "a new file in /sys/fs/cgroup was made"
    if facts.get("gvisor") and not mounts:
        return (
            True,
            f"gVisor shows no cgroup file system; writes got errno {refused}, {refused_dir}",
        )
    return bool(mounts), (
        f"{len(mounts)} cgroup mount(s), all read-only; writes got errno {refused}, {refused_dir}"
    )


def _masked(facts: dict[str, Any]) -> tuple[bool, str]:
    masked: dict[str, str] = facts["masked"]
    if set(masked) != set(MASKED_PATHS):
        return False, "the probe did not look at every path"
    # "absent": this kernel has no such file, so there is nothing to hide.
    open_ = [path for path, seen in masked.items() if seen not in ("null", "empty", "absent")]
    if open_ and facts.get("gvisor"):
        # What is there is gVisor's own kernel's, not the host's.
        return True, f"gVisor's own /proc and /sys, not the host's ({len(open_)} of its own files)"
    if open_:
        return False, "not masked: " + ", ".join(f"{path} ({masked[path]})" for path in open_)
    absent = sum(seen == "absent" for seen in masked.values())
    return True, f"{len(masked) - absent} masked, {absent} not on this kernel"
