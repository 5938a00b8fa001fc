"""Dagster wiring: feature tables, checks, online syncs, jobs and the code location's builder.

The only layer that builds Dagster objects from the contract; nothing below it imports it.
"""
