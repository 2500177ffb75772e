"""Micro-benchmarks: kernels per SIMD level beside the peers, the seed table, the pool.

Run ``python -m benchmarks.micro`` (or ``make bench-micro``); ``--quick`` for a smoke
run. It prints where it ran and writes ``benchmarks/results/micro.md`` and
``micro.json`` (the raw numbers).
"""
