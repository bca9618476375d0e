"""The pages layer."""
