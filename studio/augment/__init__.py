"""Augmentation strategies: teacher prompts, parsing, classic perturbations, entity swap."""
