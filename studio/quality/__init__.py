"""Quality of generated rows: automatic filters, LLM-as-judge scores, diversity metrics."""
