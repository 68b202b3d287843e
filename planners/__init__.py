"""Planners: a small abstract base, a registry, and learned and rule-based planners (issues 3, 6, 8)."""
