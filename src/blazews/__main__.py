"""``python -m blazews``: see :mod:`blazews.cli`."""

from .cli import main

raise SystemExit(main())
