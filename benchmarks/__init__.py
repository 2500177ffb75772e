"""blazews benchmarks: ``python -m benchmarks.micro`` (kernels, seed table, pool).

Never part of the default test run; ``tests/tools/test_benchmarks_smoke.py`` only checks that
the harness runs and reports every row.
"""
