"""The package's version: one place, read by the build (hatch) and by every side that reports it."""

__version__ = "0.2.0"
