"""Rate limits: per key and per organisation, several windows, shared by every replica."""
