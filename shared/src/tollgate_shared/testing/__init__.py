"""Test support: a pytest plugin with real PostgreSQL and NATS, and database isolation helpers."""
