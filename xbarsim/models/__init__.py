"""Networks, data sets and training (torch only)."""
