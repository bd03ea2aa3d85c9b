"""saesteer core: LM access, hook points, activation capture, text data, the Top-K SAE and its training."""
