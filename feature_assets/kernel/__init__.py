"""The kernel: the contract, its load-time rules, errors and shared names.

It imports nothing of ours above it and nothing of Dagster, dbt, DuckDB or boto3; every
other layer (stores, sensors, Dagster wiring, SDK, CLI) builds on it.
"""
