"""Tocsin's collector: receive → aggregate → store → query."""
__version__ = "0.1.0"
