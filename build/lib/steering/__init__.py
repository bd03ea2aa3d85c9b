"""Steer generation: interventions at hook points, SAE amplification/calibration, AURA, evaluation."""
