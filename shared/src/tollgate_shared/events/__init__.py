"""CloudEvents on NATS JetStream: envelope, outbox + relay for producers, inbox for consumers."""
