"""grokcircuits: the library behind the replication book of 'Is Grokking Worthwhile?'."""
__version__ = "0.1.0"
