"""AdaConv / AdaIN demo report."""
