"""batchling-echo: a toy SDK and the third-party batchling plugin that batches it."""
