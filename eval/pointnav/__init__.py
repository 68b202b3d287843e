"""Closed-loop PointNav evaluation of navigation planners with habitat-lab's metrics."""
