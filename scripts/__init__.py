"""Operator scripts. They go through the services, so every API rule holds."""
