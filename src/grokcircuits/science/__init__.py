"""The science layer."""
