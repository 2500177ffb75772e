"""The test suite, a package laid out like ``src/blazews``.

A package, not a folder on ``sys.path``: pytest puts the repository root on the path
and imports ``tests.asyncio.test_connection``, so a test folder named like a standard
module (``tests/asyncio``) never shadows it. Shared code is imported from here:
``from tests.helpers import ...``.
"""
