"""Helpers of make_references.py: tiny models, vocabularies, llama.cpp driver,
the float64 reference forward pass and the output writers."""
