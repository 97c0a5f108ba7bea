"""Warming the service before a class: pools per image, set by the admin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from codedock_magic import DEFAULT_IMAGE, DockerEngine

from .servicehelp import Service, auth, wait_for


def _ready(service: Service) -> float:
    metrics = requests.get(service.url + "/metrics", headers=auth("tok-metrics"), timeout=5).text
    line = next(line for line in metrics.splitlines() if line.startswith("codedock_pool_ready"))
    return float(line.split()[-1])


@pytest.fixture(scope="module")
def service(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = Service(
        tmp_path_factory.mktemp("warm"),
        pool_size=0,
        pool_sizes={DEFAULT_IMAGE: 1},
        admin_users=["alice"],
    ).start()
    yield started
    started.stop()


def test_pool_sizes_warm_an_image_from_the_start(service: Service, engine: DockerEngine) -> None:
    assert wait_for(lambda: _ready(service) == 1, within=60)
    assert len(service.containers(engine)) == 1


def test_an_admin_warms_a_pool_and_a_user_may_not(service: Service, engine: DockerEngine) -> None:
    asked = {"image": DEFAULT_IMAGE, "size": 3}
    refused = requests.post(
        service.url + "/api/warm", json=asked, headers=auth("tok-bob"), timeout=10
    )
    assert refused.status_code == 403
    assert "bob may not warm the pools" in refused.json()["message"]
    assert _ready(service) <= 1

    answer = requests.post(
        service.url + "/api/warm", json=asked, headers=auth("tok-alice"), timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["size"] == 3
    assert wait_for(lambda: _ready(service) == 3, within=90)
    assert wait_for(lambda: len(service.containers(engine)) == 3, within=30)
    # A run takes one of them, warm.
    run = requests.post(
        service.url + "/api/runs",
        json={"code": "cHJpbnQoMSk=", "stdin": ""},  # print(1)
        headers=auth("tok-bob"),
        timeout=60,
    )
    last = json.loads(run.content.splitlines()[-1])
    assert last["event"] == "result" and last["result"]["status"] == "ok"

    # And back down: the admin gives the containers back.
    answer = requests.post(
        service.url + "/api/warm",
        json={"image": DEFAULT_IMAGE, "size": 0},
        headers=auth("tok-alice"),
        timeout=10,
    )
    assert answer.status_code == 200
    assert wait_for(lambda: _ready(service) == 0, within=30)
    assert wait_for(lambda: service.containers(engine) == [], within=30)


@pytest.mark.parametrize(
    ("asked", "said"),
    [
        ({"image": DEFAULT_IMAGE, "size": 65}, "a whole number from 0 to 64"),
        ({"image": DEFAULT_IMAGE, "size": -1}, "a whole number from 0 to 64"),
        ({"image": DEFAULT_IMAGE, "size": "4"}, "a whole number from 0 to 64"),
        ({"image": "evil/image:latest", "size": 1}, "allowed_images"),
    ],
)
def test_a_bad_warm_is_refused_in_one_line(
    service: Service, asked: dict[str, object], said: str
) -> None:
    answer = requests.post(
        service.url + "/api/warm", json=asked, headers=auth("tok-alice"), timeout=10
    )
    assert answer.status_code == 400
    assert said in answer.json()["message"]


def test_a_bad_pool_size_in_the_config_stops_the_service(tmp_path: Path) -> None:
    bad = Service(tmp_path, pool_sizes={DEFAULT_IMAGE: 100})
    with pytest.raises(AssertionError, match=r"pool_sizes\['codedock/pybuntu:latest'\] 100"):
        bad.start()
    bad.stop()
