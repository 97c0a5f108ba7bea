"""What the service lets each user run: its defaults, its ceilings, its quotas.

Pure logic, so that it is tested without a server. The settings are the
service's own (``default_memory``, ``max_memory``, ...), given as the config
file writes them; groups of the hub may raise or lower any of them
(``group_settings = {"teachers": {"max_memory": "2g"}}``). A user in several
groups gets the most generous value of each. A request names only the limits
its caller chose: those are checked against the ceilings and refused when over,
never quietly cut; the others are the service's defaults.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import InvalidValueError, ServiceRefusedError
from ..core.limits import LIMIT, LIMIT_FIELDS, LIMITS, SIZES, Ceilings, Limits, parse_size, resolve
from ..core.profile import DEFAULT_IMAGE
from ..core.request import CaseInput

__all__ = ["SETTINGS", "Policy", "Tier"]

#: Every setting a policy reads, with its default as the config file writes it.
#: A ceiling of 0 or "" is no ceiling. The limits' come from their table.
SETTINGS: dict[str, Any] = {
    **{f"default_{limit.name}": limit.default for limit in LIMITS},
    "default_image": DEFAULT_IMAGE,
    **{f"max_{limit.name}": limit.ceiling for limit in LIMITS},
    "max_code_bytes": "1m",
    "max_stdin_bytes": "16m",
    "allowed_images": [DEFAULT_IMAGE],
    "max_concurrent_per_user": 2,
    "max_queued_per_user": 8,
    "max_cases": 100,
    "max_run_seconds": 600.0,
}

_COUNTS = ("max_concurrent_per_user", "max_queued_per_user", "max_cases")
# Base64 makes a body a third larger than the code and stdin it carries; the
# rest of a body (names, limits, cases' own fields) fits in this.
_BODY_SLACK = 64 * 1024
# Tiers of group mixes kept at once (each is small; users bring few mixes).
_CACHED = 4096


@dataclass(frozen=True)
class Tier:
    """The settings that apply to one user, resolved from the service's and their groups'.

    Attributes:
        defaults: the limits of a request that asks for none.
        default_image: the image of a request that names none.
        ceilings: the most each limit may be, by field name (absent: none).
        images: the images a request may name (empty: any).
        max_code_bytes: the largest code a request may send.
        max_stdin_bytes: the largest stdin a request may send.
        max_concurrent: runs of this user at once.
        max_queued: runs of this user waiting for a slot, past which one is refused.
        max_cases: the most test cases one run may have.
        max_run_seconds: the most seconds a whole run may ask for: its timeout,
            or its cases' together (0: no bound).
    """

    defaults: Limits
    default_image: str
    ceilings: Mapping[str, float]
    images: tuple[str, ...]
    max_code_bytes: int
    max_stdin_bytes: int
    max_concurrent: int
    max_queued: int
    max_cases: int = SETTINGS["max_cases"]
    max_run_seconds: float = SETTINGS["max_run_seconds"]

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], prefix: str = "") -> Tier:
        """Check every setting and resolve them; a bad one raises, naming it.

        ``prefix`` starts every setting's name in messages (``SandboxService.``).
        """
        try:
            return cls._from_settings(settings, prefix)
        except InvalidValueError as exc:
            if exc.name.startswith(prefix):
                raise
            raise InvalidValueError(prefix + exc.name, exc.value, exc.expected) from None

    @classmethod
    def _from_settings(cls, settings: Mapping[str, Any], prefix: str) -> Tier:
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise InvalidValueError("setting", unknown[0], "one of " + ", ".join(SETTINGS))
        values = {**SETTINGS, **settings}
        defaults, ceilings = resolve(values, prefix=prefix)
        images = values["allowed_images"]
        if isinstance(images, str) or not all(isinstance(i, str) and i for i in images):
            raise InvalidValueError("allowed_images", images, "a list of image names")
        default_image = values["default_image"]
        if not isinstance(default_image, str) or not default_image:
            raise InvalidValueError("default_image", default_image, "an image name")
        if images and default_image not in images:
            raise InvalidValueError("default_image", default_image, f"one of {list(images)}")
        counts: dict[str, int] = {}
        for name in _COUNTS:
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidValueError(name, value, "a whole number, 0 or more")
            counts[name] = value
        if counts["max_concurrent_per_user"] < 1:
            raise InvalidValueError(
                "max_concurrent_per_user", counts["max_concurrent_per_user"], "at least 1"
            )
        whole = values["max_run_seconds"]
        if isinstance(whole, bool) or not isinstance(whole, (int, float)) or not whole >= 0:
            raise InvalidValueError("max_run_seconds", whole, "a number of seconds, 0 or more")
        return cls(
            defaults=defaults,
            default_image=default_image,
            ceilings=ceilings.bounds,
            images=tuple(images),
            max_code_bytes=parse_size(values["max_code_bytes"], "max_code_bytes"),
            max_stdin_bytes=parse_size(values["max_stdin_bytes"], "max_stdin_bytes"),
            max_concurrent=counts["max_concurrent_per_user"],
            max_queued=counts["max_queued_per_user"],
            max_cases=counts["max_cases"],
            max_run_seconds=float(whole),
        )

    @property
    def body_cap(self) -> int:
        """The largest body a run of this tier may send: its code and stdin as base64."""
        return (self.max_code_bytes + self.max_stdin_bytes) * 4 // 3 + _BODY_SLACK

    def apply(self, requested: Mapping[str, Any], image: str | None) -> tuple[Limits, str]:
        """The limits and image a request gets.

        ``requested`` holds the values of the limits the caller chose (their names
        are the request's ``asked``); the rest come from the defaults.

        Raises:
            InvalidValueError: a requested value is malformed, or not a limit.
            ServiceRefusedError: a requested value is over its ceiling, or the image
                is not allowed.
        """
        unknown = sorted(set(requested) - set(LIMIT_FIELDS))
        if unknown:
            raise InvalidValueError("limit", unknown[0], "one of " + ", ".join(LIMIT_FIELDS))
        limits = self.defaults.replace(**dict(requested)) if requested else self.defaults
        over = Ceilings(self.ceilings).over(limits, requested)
        if over is not None:
            shown = LIMIT[over].show
            raise ServiceRefusedError(
                f"{over} {shown(getattr(limits, over))} is over the service's ceiling "
                f"max_{over} = {shown(self.ceilings[over])}; ask for less, or ask your "
                "administrator",
                422,
            )
        chosen = image if image is not None else self.default_image
        if self.images and chosen not in self.images:
            raise ServiceRefusedError(
                f"image {chosen!r} is not allowed by the service; allowed_images = "
                f"{list(self.images)}",
                422,
            )
        return limits, chosen

    def describe(self) -> dict[str, Any]:
        """The tier as JSON, for ``/api/info`` and ``%sandbox_info``."""
        return {
            "defaults": {name: getattr(self.defaults, name) for name in LIMIT_FIELDS},
            "default_image": self.default_image,
            "ceilings": dict(self.ceilings),
            "allowed_images": list(self.images),
            "max_code_bytes": self.max_code_bytes,
            "max_stdin_bytes": self.max_stdin_bytes,
            "max_concurrent_per_user": self.max_concurrent,
            "max_queued_per_user": self.max_queued,
            "max_cases": self.max_cases,
            "max_run_seconds": self.max_run_seconds,
        }

    def check_cases(self, cases: Sequence[CaseInput]) -> None:
        """Refuse a run whose cases are too many, or ask for more time than the ceiling.

        A case's memory is bounded by its run's, which the ceiling has bounded.

        Raises:
            ServiceRefusedError: over ``max_cases`` or ``max_timeout``.
        """
        if len(cases) > self.max_cases:
            raise ServiceRefusedError(
                f"{len(cases)} cases are over the service's max_cases = {self.max_cases}; "
                "check against fewer at a time",
                422,
            )
        ceiling = self.ceilings.get("timeout")
        for number, case in enumerate(cases, 1):
            if ceiling is not None and case.timeout is not None and case.timeout > ceiling:
                raise ServiceRefusedError(
                    f"case {number}: timeout {case.timeout:g} is over the service's ceiling "
                    f"max_timeout = {ceiling:g}; ask for less, or ask your administrator",
                    422,
                )

    def check_run_seconds(self, seconds: float) -> None:
        """Refuse a run that may take more than ``max_run_seconds`` in all: its timeout,
        or for a run with cases, their timeouts together.

        Raises:
            ServiceRefusedError: over ``max_run_seconds``.
        """
        if self.max_run_seconds and seconds > self.max_run_seconds:
            raise ServiceRefusedError(
                f"the run may take {seconds:g} s in all (its timeout, or its cases' together), "
                f"over the service's max_run_seconds = {self.max_run_seconds:g}; ask for less "
                "time or fewer cases, or ask your administrator",
                422,
            )


def _most_generous(name: str, values: list[Any]) -> Any:
    if name == "allowed_images":
        if any(not images for images in values):
            return []  # a group allowed any image
        merged: list[str] = []
        for images in values:
            merged.extend(image for image in images if image not in merged)
        return merged
    if name == "default_image":
        return values[0]
    if name.startswith("max_") and name not in _COUNTS:
        unbounded = [value for value in values if value in (0, "")]
        if unbounded:
            return unbounded[0]
    if name.split("_", 1)[1] in SIZES or name in ("max_code_bytes", "max_stdin_bytes"):
        return max(values, key=lambda value: parse_size(value, name))
    return max(values)


@dataclass
class Policy:
    """The service's settings and its groups' overrides, resolved per user.

    Args:
        settings: the service-wide settings (see :data:`SETTINGS`).
        groups: for a group name, the settings its members get instead.
        prefix: starts every setting's name in messages (``SandboxService.``).
    """

    settings: Mapping[str, Any] = field(default_factory=dict)
    groups: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    prefix: str = ""

    def __post_init__(self) -> None:
        self._base = Tier.from_settings(self.settings, self.prefix)
        self._cache: dict[frozenset[str], Tier] = {}
        # Each group's tier on its own must hold, and so must each tier a user in
        # several groups gets, so that a bad override or a bad mix is found at
        # start, not by the first user in those groups. Pairs are enough: a merged
        # setting is the most generous of the groups', so a mix that breaks a rule
        # (a default over its ceiling, a default image not allowed) breaks it
        # already with the group giving the offending value and one more.
        if not isinstance(self.groups, Mapping):
            raise InvalidValueError(
                f"{self.prefix}group_settings", self.groups, "a dict of groups' settings"
            )
        for name, overrides in self.groups.items():
            if not isinstance(name, str) or not isinstance(overrides, Mapping):
                raise InvalidValueError(
                    f"{self.prefix}group_settings[{name!r}]", overrides, "a dict of settings"
                )
            try:
                Tier.from_settings({**self.settings, **overrides})
            except InvalidValueError as exc:
                raise InvalidValueError(
                    f"{self.prefix}group_settings[{name!r}].{exc.name}", exc.value, exc.expected
                ) from None
        names = sorted(self.groups)
        for first, second in itertools.combinations(names, 2):
            try:
                self.tier([first, second])
            except InvalidValueError as exc:
                raise InvalidValueError(
                    f"{self.prefix}group_settings[{first!r}] with [{second!r}]: {exc.name}",
                    exc.value,
                    f"{exc.expected} (a user in both groups would get it)",
                ) from None
            except (TypeError, ValueError) as exc:  # values of kinds that do not compare
                raise InvalidValueError(
                    f"{self.prefix}group_settings[{first!r}] with [{second!r}]",
                    str(exc),
                    "settings of one kind in both groups",
                ) from None

    def tier(self, groups: Iterable[str] = ()) -> Tier:
        """The tier of a user in ``groups``."""
        relevant = frozenset(group for group in groups if group in self.groups)
        if not relevant:
            return self._base
        tier = self._cache.get(relevant)
        if tier is None:
            merged = dict(self.settings)
            names = {name for group in relevant for name in self.groups[group]}
            for name in names:
                values = [self.groups[g][name] for g in sorted(relevant) if name in self.groups[g]]
                merged[name] = _most_generous(name, values)
            if len(self._cache) >= _CACHED:
                self._cache.clear()
            tier = self._cache[relevant] = Tier.from_settings(merged)
        return tier
