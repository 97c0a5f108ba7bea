"""The Kubernetes engine's selection and options, with no cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from codedock_magic.core.errors import EngineUnavailableError, InvalidValueError
from codedock_magic.engines import available_engines, connect
from codedock_magic.engines.kubernetes.engine import KubernetesEngine


def test_kubernetes_is_an_engine_by_name() -> None:
    assert available_engines()["kubernetes"].endswith("kubernetes.engine:KubernetesEngine")
    made = connect("kubernetes", namespace="sandboxes", image_pull_policy="Never")
    assert isinstance(made, KubernetesEngine)
    # What a watchdog makes it again from.
    assert made.options == {"namespace": "sandboxes", "image_pull_policy": "Never"}


@pytest.mark.parametrize(
    "options",
    [{"namespace": "Not_A_Namespace"}, {"image_pull_policy": "Sometimes"}, {"tolerations": "x"}],
)
def test_a_bad_option_is_refused_where_it_is_given(options: dict[str, object]) -> None:
    with pytest.raises(InvalidValueError):
        KubernetesEngine(**options)  # type: ignore[arg-type]


def test_no_cluster_says_so_and_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    missing = KubernetesEngine(kubeconfig=str(tmp_path / "nothing"))
    with pytest.raises(EngineUnavailableError, match="KUBECONFIG"):
        missing.ping()
