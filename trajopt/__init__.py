"""Trajectory optimisation experts in CasADi (issue 5)."""
