"""Few-shot CDC experiments: configs and the demo's correspondence report."""
