"""What the optional test tiers (strict-S3, browser) say at the end of a run.

Each tier's conftest registers its list of lines here under its section's title and appends
to it as its fixtures start, skip or fail. The root conftest prints every section in the
terminal summary, whether the tests ran in this process or in pytest-xdist workers (a worker
sends its lines to the controller when it finishes)."""

from __future__ import annotations

SECTIONS: dict[str, list[str]] = {}


def section(title: str) -> list[str]:
    """The list of lines of the section ``title`` (made on first use)."""
    return SECTIONS.setdefault(title, [])
