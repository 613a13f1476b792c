"""Multi-task towers on TorchRec embeddings (SPEC §4)."""
