"""Built-in providers, one module per SDK; each is a batchling plugin."""
