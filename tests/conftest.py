"""Cross-service tests: the five services as real processes over real NATS, PostgreSQL, Redis."""
