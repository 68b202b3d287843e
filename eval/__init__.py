"""Closed-loop evaluation: simulation, metrics and reports (issues 3 and 7)."""
