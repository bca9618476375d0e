"""The ops layer."""
