"""Explain SAE features: mutual-information words, TopAct and logit-lens baselines, scores, browser."""
