"""Benchmarks of the usage ELT against a plain-Spark floor, a pandas baseline and a raw copy.

Benchmarks, not tests, and not part of the product: ``python -m bench --help``.
"""
