"""The references the kernels are tested against: the plain NumPy pipeline and the exact nodal solver."""
