"""Seed Studio: from a handful of gold seed examples to a fine-tuned model you can trust."""

__version__ = "0.1.0"
