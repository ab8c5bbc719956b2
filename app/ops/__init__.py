"""Operations: request ids, access logs, health and readiness, metrics."""
