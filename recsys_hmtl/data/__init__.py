"""Data layer (SPEC §3): Polars readers, schema checks, encoding, splits, cache, KJT batches."""
