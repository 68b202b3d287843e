"""Signal Temporal Logic: formulas, batched robustness, driving rules, calibration (issue 4)."""
