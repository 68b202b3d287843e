"""PDM (Predictive Driver Model) machinery shared by PDM-Closed and NAVSIM scoring: simulation, scoring."""
