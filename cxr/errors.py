"""Errors a user can fix. The CLI prints them as one line (no traceback unless --debug)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a missing file, a bad config key, a wrong value. The message names it."""


class ConfigError(UserError):
    """A config file or override that does not fit the stage's schema."""
