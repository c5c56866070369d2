"""The ``server`` fixture: a real HTTP server on 127.0.0.1 for the download tests."""

from __future__ import annotations

import pytest
from download_fixtures import FileServer


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()
