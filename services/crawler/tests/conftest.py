from collections.abc import Iterator

import pytest

from seoblog_testing.site import FixtureSite


@pytest.fixture
def own_site() -> Iterator[FixtureSite]:
    """A fixture site of this test's own: robots.txt and host limits are per origin."""
    with FixtureSite() as site:
        yield site
