"""Light Argon2 parameters for accounts made in tests.

The production cost takes about 0.2 s per hash here (each new hub, account and login pays
it), and no rule under test depends on it. The hash carries its parameters, so verifying
follows them; hubs started as processes keep the production cost.
"""

from __future__ import annotations

import functools

import pytest
from argon2 import PasswordHasher

from hub.services import users as users_service


def light_password_hashing(patch: pytest.MonkeyPatch) -> None:
    """Make the hub's account service hash with light Argon2id parameters."""
    light = functools.partial(PasswordHasher, time_cost=1, memory_cost=8 * 1024, parallelism=1)
    patch.setattr(users_service, "PasswordHasher", light)
