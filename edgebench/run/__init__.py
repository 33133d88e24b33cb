"""One run: plan it, take the host lock and the device lease, cool down, measure through a backend."""
