"""Host-side accuracy: a variant's top-1 on this host, and the float32 reference outputs for fidelity."""
