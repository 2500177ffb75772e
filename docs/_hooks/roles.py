"""mkdocs hook: show the Sphinx roles of the docstrings as code, not as raw text.

The docstrings name objects the Sphinx way (``:class:`~blazews.ClientOptions```), which
mkdocstrings renders as ``:class:`` followed by the code. This drops the role, and with
a leading ``~`` keeps the last component only, as Sphinx does.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj|const):<code>(~?)([^<]+)</code>"
)


def _shorten(match: re.Match[str]) -> str:
    tilde, name = match.groups()
    return f"<code>{name.rsplit('.', 1)[-1] if tilde else name}</code>"


def on_post_page(output: str, **kwargs: Any) -> str:
    return ROLE.sub(_shorten, output)
