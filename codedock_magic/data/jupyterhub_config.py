# codedock-magic for a multi-user JupyterHub: the sandbox service, for the hub's users.
#
# It ships in the codedock-magic package; `codedock hub-config` prints its path. Load it
# from your own jupyterhub_config.py, after your own services and roles:
#
#     load_subconfig("/the/path/codedock/hub-config/printed")
#
# or copy it there (`codedock hub-config --print`). It works in one of two modes.
#
# Managed (the default): it
#   - starts `codedock serve` as the hub's managed service "codedock", on 127.0.0.1;
#     the service reads /etc/codedock/codedock_service_config.py (its ceilings, quotas,
#     audit log), and is the only process that needs the Docker engine;
#   - registers it with no `url`, so the hub's public proxy has no route to it: only
#     kernels (on this host, at CODEDOCK_SERVICE_URL) and the hub reach it, never an
#     anonymous visitor of the hub's public address.
#
# External (CODEDOCK_SERVICE_URL is set in the hub's environment): the service runs
# apart from the hub (another machine, a Kubernetes Deployment), as hubs whose users'
# servers run in containers or Pods need, since those cannot reach the hub's 127.0.0.1.
# The fragment starts nothing and registers the service by that URL, with the token
# in CODEDOCK_SERVICE_TOKEN as its api_token. The proxy then routes
# /services/codedock/ to it, where it answers nothing (its API lives under /api/).
# Start the service with, in its environment:
#   JUPYTERHUB_API_URL=http://HUB:8081/hub/api  JUPYTERHUB_API_TOKEN=<that token>
#   JUPYTERHUB_SERVICE_NAME=codedock  (so it asks for this service's access scope)
#
# In both modes it lets every user's server token reach that service and nothing more
# (access:services!service=codedock), and tells kernels where it is
# (CODEDOCK_SERVICE_URL in the spawner's environment).
#
# The service needs no scope of its own: it checks a kernel's token by asking the hub
# "whose token is this?" with that very token, and the answer carries the user's name
# and groups. So its role grants nothing.
#
# Settings read from the hub's environment, since a fragment cannot read the values
# of your own config file:
#   CODEDOCK_SERVICE_URL     external mode: where users' kernels and the hub reach the
#                            service (http:// or https://)
#   CODEDOCK_SERVICE_TOKEN   external mode: the service's API token (at least 32
#                            characters; openssl rand -hex 32)
#   CODEDOCK_SERVICE_PORT    managed mode: the service's port on 127.0.0.1 (default 8765)
#   CODEDOCK_SERVICE_CONFIG  managed mode: its config file (default
#                            /etc/codedock/codedock_service_config.py)
#
# Users' servers must not be able to reach the Docker socket: with LocalProcessSpawner,
# keep users out of the `docker` group.

import os
import sys

c = get_config()  # noqa: F821 (given by JupyterHub's config loader)

_external = os.environ.get("CODEDOCK_SERVICE_URL", "").strip()
if _external:
    from urllib.parse import urlsplit

    _where = urlsplit(_external)
    if _where.scheme not in ("http", "https") or not _where.hostname:
        raise ValueError(
            f"CODEDOCK_SERVICE_URL={_external!r} is not a URL the hub can register: "
            "give http://HOST:PORT or https://HOST:PORT of the codedock service"
        )
    _token = os.environ.get("CODEDOCK_SERVICE_TOKEN", "")
    if len(_token) < 32:
        raise ValueError(
            "CODEDOCK_SERVICE_URL is set, so the codedock service runs apart from the hub "
            "and needs its API token in CODEDOCK_SERVICE_TOKEN (at least 32 characters, "
            "e.g. openssl rand -hex 32), the same as the service's JUPYTERHUB_API_TOKEN"
        )
    _url = _external.rstrip("/")
    c.JupyterHub.services.append(
        {
            "name": "codedock",
            # An external service: the hub runs nothing, and knows it by its URL.
            "url": _url,
            "api_token": _token,
            "display": False,
        }
    )
else:
    _port = int(os.environ.get("CODEDOCK_SERVICE_PORT", "8765"))
    _url = f"http://127.0.0.1:{_port}"
    _command = [
        sys.executable,
        "-m",
        "codedock_magic",
        "serve",
        "--ip=127.0.0.1",
        f"--port={_port}",
    ]
    if os.environ.get("CODEDOCK_SERVICE_CONFIG"):
        _command.append(f"--config={os.environ['CODEDOCK_SERVICE_CONFIG']}")
    c.JupyterHub.services.append(
        {
            "name": "codedock",
            # No "url": with one, the hub would route /services/codedock/ of its public
            # proxy to the service, and anyone who can reach the hub could reach it.
            "command": _command,
            "display": False,
            # The service talks to the engine as the hub's own user (root); these say where.
            "environment": {
                name: os.environ[name]
                for name in ("DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "PATH")
                if name in os.environ
            },
        }
    )

c.JupyterHub.load_roles.append(
    {
        "name": "codedock-service",
        "description": "The sandbox service: needs no access to the hub's data.",
        "scopes": [],
        "services": ["codedock"],
    }
)
# Every user may reach the service, and their server's token carries that right
# (a token gets only the scopes its owner holds).
c.JupyterHub.load_roles.append(
    {
        "name": "user",
        "description": "A user's own resources, and the sandbox service.",
        "scopes": ["self", "access:services!service=codedock"],
    }
)
c.Spawner.server_token_scopes.extend(
    ["access:servers!server", "users:activity!user", "access:services!service=codedock"]
)
c.Spawner.environment.update({"CODEDOCK_SERVICE_URL": _url})
