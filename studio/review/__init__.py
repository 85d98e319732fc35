"""Human review: samples, verdicts, the gate statistics, selection, prompt revision from feedback."""
