"""What ships in the package and how the doctor judges a probe's facts: pure logic."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from codedock_magic import cli
from codedock_magic.core.limits import Limits
from codedock_magic.core.shipped import hub_fragment, image_dir
from codedock_magic.doctor import Finding, all_hold, check, parse_facts, report
from codedock_magic.engines import docker_images
from codedock_magic.engines.base import MASKED_PATHS
from codedock_magic.errors import ImageBuildError

ROOT = Path(__file__).resolve().parents[2]

LIMITS = Limits(memory="256m", pids=64)
# What the probe reports in a sandbox that keeps every promise (cgroup v2 here).
GOOD: dict[str, Any] = {
    "uid": 65534,
    "euid": 65534,
    "interfaces": ["lo"],
    "CapEff": "0000000000000000",
    "CapPrm": "0000000000000000",
    "NoNewPrivs": "1",
    "Seccomp": "2",
    "Seccomp_filters": "2",
    "machine": "x86_64",
    "page": 4096,
    "io_uring": [-1, 1],
    "x32": [-1, 1],
    "root_write": 30,
    "mount_root": "ro,relatime",
    "cgroup_mounts": {"/sys/fs/cgroup": "ro,nosuid,nodev,noexec,relatime"},
    "cgroup": {"memory": str(256 * 1024**2), "swap": "0", "pids": "64"},
    "swap_total": "0",
    "cgroup_write": 30,
    "cgroup_dir_write": 30,
    "masked": {
        path: "empty" if path in ("/sys/firmware", "/proc/acpi") else "null"
        for path in MASKED_PATHS
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    facts = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target = facts
    for key in parents:
        target = target[key]
    target[last] = value
    return facts


def test_a_sandbox_that_keeps_every_promise_passes_every_row() -> None:
    findings = check(GOOD, LIMITS)
    assert [f.promise for f in findings if not f.ok] == []
    assert len(findings) == 10
    assert all_hold(findings)


@pytest.mark.parametrize(
    ("path", "value", "promise"),
    [
        ("interfaces", ["eth0", "lo"], "no network but lo"),
        ("uid", 0, "not root"),
        ("CapEff", "00000000a80425fb", "no capabilities"),
        ("NoNewPrivs", "0", "no-new-privileges"),
        ("root_write", 0, "the root filesystem is read-only"),
        ("mount_root", "rw,relatime", "the root filesystem is read-only"),
        ("cgroup.memory", str(512 * 1024**2), "the memory limit, with no swap"),
        ("cgroup.memory", "max", "the memory limit, with no swap"),
        ("cgroup.swap", "max", "the memory limit, with no swap"),
        ("cgroup.pids", "max", "the pids limit"),
        ("cgroup.pids", "128", "the pids limit"),
        ("Seccomp", "0", "the seccomp filter"),
        ("io_uring", [3, 0], "the seccomp filter"),
        ("x32", [12, 0], "the seccomp filter"),
        ("cgroup_mounts", {"/sys/fs/cgroup": "rw,nosuid"}, "/sys/fs/cgroup cannot be written"),
        ("cgroup_write", 0, "/sys/fs/cgroup cannot be written"),
        ("cgroup_dir_write", 0, "/sys/fs/cgroup cannot be written"),
        ("masked./proc/cmdline", "open", "host paths are masked"),
        ("masked./proc/kcore", "EACCES", "host paths are masked"),
        ("masked./sys/firmware", "tmpfs with files", "host paths are masked"),
    ],
)
def test_each_broken_promise_fails_its_own_row_alone(path: str, value: Any, promise: str) -> None:
    findings = check(_with(path, value), LIMITS)
    assert [f.promise for f in findings if not f.ok] == [promise]
    assert not all_hold(findings)


def test_cgroup_v1_swap_counts_when_memory_and_swap_equal_the_limit() -> None:
    limit = str(256 * 1024**2)
    v1 = _with("cgroup", {"memory": limit, "memsw": limit, "pids": "64"})
    assert all_hold(check(v1, LIMITS))
    more = _with("cgroup", {"memory": limit, "memsw": str(512 * 1024**2), "pids": "64"})
    assert [f.promise for f in check(more, LIMITS) if not f.ok] == [
        "the memory limit, with no swap"
    ]


def test_without_swap_accounting_only_a_host_without_swap_keeps_the_promise() -> None:
    unaccounted = _with("cgroup", {"memory": str(256 * 1024**2), "pids": "64"})
    assert all_hold(check(unaccounted, LIMITS))
    unaccounted["swap_total"] = "1048572"
    assert not all_hold(check(unaccounted, LIMITS))


def test_a_fact_the_probe_did_not_report_is_a_failing_row_not_a_crash() -> None:
    facts = copy.deepcopy(GOOD)
    del facts["cgroup"]["pids"]
    del facts["interfaces"]
    failed = {f.promise: f.detail for f in check(facts, LIMITS) if not f.ok}
    assert set(failed) == {"no network but lo", "the pids limit"}
    assert all(detail.startswith("the probe did not report it") for detail in failed.values())


def test_a_limit_the_kernel_rounded_down_to_whole_pages_still_holds() -> None:
    limits = Limits(memory="1.3g")
    rounded = limits.memory // 4096 * 4096
    assert rounded != limits.memory
    assert all_hold(check(_with("cgroup.memory", str(rounded)), limits))
    below = str(rounded - 4096)
    assert not all_hold(check(_with("cgroup.memory", below), limits))


def test_the_x32_call_is_only_asked_of_x86_64() -> None:
    arm = _with("machine", "aarch64")
    arm["x32"] = None
    assert all_hold(check(arm, LIMITS))


def test_a_fact_of_the_wrong_type_is_a_failing_row_not_a_crash() -> None:
    findings = check(_with("cgroup.memory", 268435456), LIMITS)
    assert [f.promise for f in findings if not f.ok] == ["the memory limit, with no swap"]


def test_only_a_json_object_on_the_last_line_counts_as_the_probes_facts() -> None:
    assert parse_facts('banner of the image\n{"uid": 1}\n') == {"uid": 1}
    assert parse_facts("") is None
    assert parse_facts("not json") is None
    assert parse_facts("[1, 2]") is None


def test_the_report_is_a_row_each_and_a_sum() -> None:
    findings = [Finding("one", True, "fine"), Finding("a longer one", False, "broken")]
    assert report(findings).splitlines() == [
        "ok    one           fine",
        "FAIL  a longer one  broken",
        "1 of 2 promises do not hold",
    ]
    assert report(findings[:1]).splitlines()[-1] == "all 1 promises hold"
    assert not all_hold([])


def test_the_image_files_and_the_hub_fragment_ship_inside_the_package() -> None:
    package = ROOT / "codedock_magic"
    for recipe in docker_images.IMAGES.values():
        for name in (recipe.dockerfile, *recipe.files):
            assert (image_dir() / name).is_file()
            assert image_dir().is_relative_to(package)
    assert hub_fragment().is_relative_to(package)
    compile(hub_fragment().read_text(), str(hub_fragment()), "exec")
    # The checkout's build script is a caller of the packaged build, not a second copy.
    script = (ROOT / "images" / "pybuntu" / "build.sh").read_text()
    assert "args=(image build)" in script and '-m codedock_magic "${args[@]}"' in script
    assert not (ROOT / "images" / "pybuntu" / "Dockerfile").exists()


def test_an_images_inputs_change_with_its_files_and_only_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("Dockerfile", "Dockerfile.sci", "codedock_mplcache.py"):
        (tmp_path / name).write_bytes((image_dir() / name).read_bytes())
    monkeypatch.setattr(docker_images, "image_dir", lambda: tmp_path)
    standard, sci = docker_images.STANDARD.inputs(), docker_images.SCI.inputs()
    (tmp_path / "codedock_mplcache.py").write_text("# changed\n")
    assert docker_images.STANDARD.inputs() == standard
    assert docker_images.SCI.inputs() != sci
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert docker_images.STANDARD.inputs() != standard


def test_hub_config_prints_the_fragments_path_or_the_fragment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["hub-config"]) == 0
    assert capsys.readouterr().out == f"{hub_fragment()}\n"
    assert cli.main(["hub-config", "--print"]) == 0
    assert capsys.readouterr().out == hub_fragment().read_text()


def test_the_mirror_comes_from_the_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEDOCK_MIRROR", "http://127.0.0.1:9/debian")
    assert docker_images._apt_mirror() == "http://127.0.0.1:9/debian"


def test_the_checkouts_old_hub_fragment_path_loads_the_packaged_fragment(tmp_path: Path) -> None:
    from traitlets.config.loader import PyFileConfigLoader

    config = tmp_path / "jupyterhub_config.py"
    old = ROOT / "jupyter-config" / "jupyterhub_config.py"
    config.write_text(f"c.JupyterHub.services = []\nload_subconfig({str(old)!r})\n")
    loaded = PyFileConfigLoader(config.name, path=str(tmp_path)).load_config()
    assert [service["name"] for service in loaded.JupyterHub.services] == ["codedock"]
    environment = loaded.Spawner.environment.get_value({})
    assert environment["CODEDOCK_SERVICE_URL"].startswith("http://127.0.0.1:")


class FakeImageAPI:
    """docker-py's image calls, as far as the builder uses them."""

    def __init__(self, images: dict[str, dict[str, str]], fail: set[str]) -> None:
        self.images = images
        self.fail = fail  # "online", "offline": which builds end in an error
        self.builds: list[dict[str, Any]] = []
        self.tags: list[tuple[str, str, str]] = []

    def inspect_image(self, name: str) -> dict[str, Any]:
        if name not in self.images:
            raise docker.errors.ImageNotFound(name)
        return {"Config": {"Labels": self.images[name]}}

    def build(self, **kwargs: Any) -> Any:
        self.builds.append(kwargs)
        way = "online" if "BASE" not in kwargs["buildargs"] else "offline"
        if way in self.fail:
            return iter([{"stream": "Step 1/9"}, {"error": f"{way} went wrong"}])
        self.images[kwargs["tag"]] = kwargs["labels"]
        return iter([{"stream": "Successfully built"}])

    def tag(self, image: str, repository: str, tag: str) -> None:
        self.tags.append((image, repository, tag))


class FakeBuildEngine:
    def __init__(self, api: FakeImageAPI) -> None:
        self.api = api

    def ping(self) -> None:
        pass


def _builder(
    current: bool = False, fail: frozenset[str] = frozenset()
) -> tuple[docker_images.ImageBuilder, FakeImageAPI, list[str]]:
    recipe = docker_images.STANDARD
    images = {recipe.offline_base: {}}
    if current:
        images[recipe.name] = {docker_images.INPUTS_LABEL: recipe.inputs()}
    api = FakeImageAPI(images, set(fail))
    lines: list[str] = []
    engine: Any = FakeBuildEngine(api)
    return docker_images.ImageBuilder(engine, log=lines.append), api, lines


def test_a_current_image_is_not_built_again_unless_asked() -> None:
    builder, api, lines = _builder(current=True)
    builder.build(docker_images.STANDARD)
    assert api.builds == [] and "is up to date" in lines[0]
    assert api.tags == [("codedock/pybuntu:latest", "pybuntu", "latest")]
    builder.build(docker_images.STANDARD, force=True)
    assert [build["buildargs"] for build in api.builds] == [{}]


def test_an_explicit_base_or_offline_build_always_builds_on_it() -> None:
    builder, api, _ = _builder(current=True)
    builder.build(docker_images.STANDARD, base="python:3.12-slim")
    builder.build(docker_images.STANDARD, offline=True)
    assert [build["buildargs"] for build in api.builds] == [
        {"BASE": "python:3.12-slim"},
        {"BASE": docker_images.STANDARD.offline_base},
    ]
    labels = api.builds[0]["labels"]
    assert labels[docker_images.INPUTS_LABEL] == docker_images.STANDARD.inputs()
    assert labels[docker_images.KIND_LABEL] == "pybuntu"


def test_without_a_registry_it_builds_offline_and_says_why() -> None:
    builder, api, lines = _builder(fail=frozenset({"online"}))
    builder.build(docker_images.STANDARD)
    assert len(api.builds) == 2
    assert "online went wrong" in lines[0] and "offline instead" in lines[0]
    assert lines[1] == "built codedock/pybuntu:latest"


def test_when_both_ways_fail_the_error_names_both_causes() -> None:
    builder, _, _ = _builder(fail=frozenset({"online", "offline"}))
    with pytest.raises(ImageBuildError) as failed:
        builder.build(docker_images.STANDARD)
    message = str(failed.value)
    assert "on its public base: online went wrong" in message
    assert "offline: " in message and "offline went wrong" in message
    assert message.endswith("run codedock image build again")
