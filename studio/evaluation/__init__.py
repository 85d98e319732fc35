"""Evaluation pieces for comparing a base model with its fine-tuned version (pure; no database).

`metrics` scores predictions against references, `votes` keeps blind A/B bookkeeping, and `pairwise`
turns an LLM judge into a position-bias-free win rate. Heavy libraries load only when a metric runs.
"""
