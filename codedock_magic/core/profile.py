"""A container profile: the image and the container limits, what a sandbox is made of.

Two runs with equal profiles can be served by interchangeable containers, so the
warm pool keys on it; a Kubernetes pod's image and resources would come from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InvalidValueError
from .limits import ContainerLimits

__all__ = ["DEFAULT_IMAGE", "Profile"]

#: The image runs use unless told otherwise (built by codedock image build).
DEFAULT_IMAGE = "codedock/pybuntu:latest"


@dataclass(frozen=True)
class Profile:
    """What a sandbox container is made of.

    Attributes:
        image: an image with ``python3``; never pulled.
        limits: what the engine enforces on the container.
    """

    image: str = DEFAULT_IMAGE
    limits: ContainerLimits = field(default_factory=ContainerLimits)

    def __post_init__(self) -> None:
        if not isinstance(self.image, str) or not self.image.strip():
            raise InvalidValueError("image", self.image, "an image name such as " + DEFAULT_IMAGE)
