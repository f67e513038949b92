"""Benchmarks (issue 7): cdcsync on the real stack against baselines measured in the same run.

``python -m cdcsync.bench [--quick]`` (or ``python bench/run.py``) loads changes into
PostgreSQL, lets Debezium carry them to Kafka and measures how cdcsync, a minimal
aiokafka -> httpx loop and a one-request-per-event loop push them to the reference API.
Separate from the tests: nothing here runs under pytest.
"""
