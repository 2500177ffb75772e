"""``python -m blazews._bench.e2e``: run the end-to-end benchmarks."""

import sys

from blazews._bench.e2e.runner import main

sys.exit(main())
