"""See SPEC §2."""
