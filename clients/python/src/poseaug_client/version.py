"""The client version, in one place (the user agent sends it)."""

__version__ = "0.1.0"
