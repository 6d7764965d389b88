"""Device laws: programming, drift, read noise per epoch, stuck faults, the counter-based normals, encoding, drift
compensation and wire resistance, shared by every read backend."""
