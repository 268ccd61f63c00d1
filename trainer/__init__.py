"""The engine: data, model, training loop, metrics, checkpoints. No UI imports."""
