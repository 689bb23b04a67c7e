"""seoblog monitor: pipeline figures, consumer lag and alerts from the events on NATS."""
