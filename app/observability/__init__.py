"""Observability: request context, access logs, metrics, event-loop lag, health routes.

Everything here may be imported by any layer (a repository counts retries, the hub counts
streams); it imports nothing from the domains or the HTTP edge.
"""
