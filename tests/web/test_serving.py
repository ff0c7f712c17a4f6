"""Where the hub may serve without ``CAHUB_PUBLIC_BASE_URL``: on loopback only.

Without it, a webhook's signature is checked against the URL the request itself names (its
Host header), which anyone who can reach the server chooses. On loopback that is the
developer's own machine; anywhere else the hub refuses to start, in one line saying why.
"""

from __future__ import annotations

import pytest

from web.serving import signature_url_problem

LOOPBACK = ["127.0.0.1", "127.0.0.1:5000", "127.9.9.9:80", "localhost", "localhost:5000",
            "::1", "[::1]:5000"]
BEYOND = ["0.0.0.0", "0.0.0.0:5000", "::", "[::]:8000", ":5000", "192.0.2.10:80",  # noqa: S104 -- the addresses under test
          "hub.example.com:443", "unix:/run/cahub.sock", "fd://3"]


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_needs_no_public_url(address: str) -> None:
    assert None is signature_url_problem([address], None)


@pytest.mark.parametrize("address", BEYOND)
def test_beyond_loopback_without_a_public_url_is_refused_in_one_line(address: str) -> None:
    problem = signature_url_problem(["127.0.0.1:5000", address], None)

    assert problem is not None
    assert 1 == len(problem.splitlines())
    assert "CAHUB_PUBLIC_BASE_URL" in problem


@pytest.mark.parametrize("address", BEYOND)
def test_beyond_loopback_with_a_public_url_is_served(address: str) -> None:
    assert None is signature_url_problem([address], "https://hub.example.com")
