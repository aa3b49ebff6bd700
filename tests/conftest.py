"""Suite-wide fixtures: every test starts from the installed plugin table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mmeperf.plugins import isolated_registry


@pytest.fixture(autouse=True)
def _plugin_registry_is_restored() -> Iterator[None]:
    # Tests register gated or broken plugins; none may leak into the next test's detection.
    with isolated_registry():
        yield
