"""Host-side accuracy: data sets, top-1 of a variant on this host, the float32 reference outputs for fidelity."""
