"""The HTTP edge: how requests and answers look on the wire (problem+json, ...)."""
