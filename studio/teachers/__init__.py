"""Teachers: the LLMs that write synthetic rows. See `base.Teacher` for the protocol."""
