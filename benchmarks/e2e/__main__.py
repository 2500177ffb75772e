"""``python -m benchmarks.e2e``: run the end-to-end benchmarks."""

import sys

from benchmarks.e2e.runner import main

sys.exit(main())
