"""MiniBox: a small Linux container engine and build farm."""

__version__ = "0.1.0"
