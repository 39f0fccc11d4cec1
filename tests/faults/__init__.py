"""Fault, interrupt and load tests against the local stack (issue 3, items 4 and 5)."""
