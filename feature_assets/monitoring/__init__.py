"""Monitoring: drift of served features against a reference, online/offline parity, reports."""
