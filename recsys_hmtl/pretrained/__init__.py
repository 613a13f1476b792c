"""Pretrained weights the adapters share, read offline from installed packages (no downloads)."""
