"""Shared test settings."""

from __future__ import annotations

import os

from hypothesis import settings

# No deadline: CI machines are slow and shared. NNFAB_HYPOTHESIS_PROFILE=thorough runs
# more examples in the tests that do not fix max_examples themselves.
settings.register_profile("nnfab", deadline=None)
settings.register_profile("thorough", parent=settings.get_profile("nnfab"), max_examples=2000)
settings.load_profile(os.environ.get("NNFAB_HYPOTHESIS_PROFILE", "nnfab"))
