"""Who is asking: a token from the request, checked against the hub or a static table.

With a hub, a kernel sends its ``JUPYTERHUB_API_TOKEN``. JupyterHub's own
:class:`~jupyterhub.services.auth.HubAuth` asks the hub whose token it is
(``/hub/api/user`` with that token, so this service needs no scope of its own to
check it) and caches the answer; the reply carries the user's name, groups and
the token's scopes, and the token must hold this service's access scope.
Without a hub, ``api_tokens`` maps each token to a user name.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["AuthError", "Caller", "TokenChecker"]


@dataclass(frozen=True)
class Caller:
    """A user the service has identified.

    Attributes:
        name: the user name runs are counted and logged under.
        groups: the hub's groups of the user (for a static token, its ``user_groups``).
        scopes: the token's scopes on the hub (none for a static token).
    """

    name: str
    groups: tuple[str, ...] = ()
    scopes: frozenset[str] = frozenset()


class AuthError(Exception):
    """The request cannot be let in: ``status`` is 401 (no or unknown token) or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TokenChecker:
    """Turns a bearer token into a :class:`Caller`, or says why not.

    Args:
        api_tokens: static tokens, each mapped to a user name.
        hub_auth: a :class:`~jupyterhub.services.auth.HubAuth`, when a hub manages
            this service.
        user_groups: the groups of each static token's user.
    """

    def __init__(
        self,
        api_tokens: Mapping[str, str],
        hub_auth: Any = None,
        user_groups: Mapping[str, Any] | None = None,
    ) -> None:
        self.api_tokens = dict(api_tokens)
        self.hub_auth = hub_auth
        self.user_groups = {user: tuple(groups) for user, groups in (user_groups or {}).items()}

    async def caller(self, token: str) -> Caller:
        """The caller a token belongs to.

        Raises:
            AuthError: the token is missing, unknown, or may not use this service.
        """
        if not token:
            raise AuthError(401, "no token was sent; send 'Authorization: Bearer TOKEN'")
        for known, user in self.api_tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return Caller(user, self.user_groups.get(user, ()))
        if self.hub_auth is None:
            raise AuthError(401, "the token is not one of the service's api_tokens")
        model = await self.hub_auth.user_for_token(token, use_cache=True, sync=False)
        if not model or model.get("kind", "user") != "user":
            raise AuthError(401, "the hub does not know this token as a user's")
        scopes = frozenset(model.get("scopes", ()))
        needed = self.hub_auth.access_scopes
        if needed and not self.hub_auth.check_scopes(needed, model):
            raise AuthError(
                403,
                f"the token of {model['name']} lacks {' or '.join(sorted(needed))}; "
                "the admin grants it with the codedock JupyterHub config fragment",
            )
        return Caller(str(model["name"]), tuple(model.get("groups", ())), scopes)

    async def may_read_metrics(self, token: str) -> bool:
        """Whether a hub token (a user's or a service's, such as a Prometheus
        scraper's) holds ``read:metrics``.

        Raises:
            AuthError: the hub does not know the token.
        """
        if self.hub_auth is None or not token:
            return False
        model = await self.hub_auth.user_for_token(token, use_cache=True, sync=False)
        if not model:
            raise AuthError(401, "the hub does not know this token")
        from jupyterhub.services.auth import check_scopes

        return bool(check_scopes({"read:metrics"}, set(model.get("scopes", ()))))
