"""Seed Studio: from a handful of gold seed examples to a fine-tuned model you can trust."""

import os

__version__ = "0.1.0"

# huggingface_hub reads this once, at import: without it, building its User-Agent calls huggingface.co
# (a 3 s wait where the Hub is unreachable) and reports usage. The studio sends nothing it does not need.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
