"""The ReArq integration: keys, client and loop, enqueue/retry/cancel, reconcile, liveness."""
