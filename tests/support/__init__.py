"""What the suites share besides fixtures: fault proxies, TLS/SASL fronts, processes, ledgers.

Fixtures themselves live in one place, ``tests/conftest.py``; these modules are the helpers they
and the tests use.
"""
