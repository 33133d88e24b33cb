"""One run: plan it from a request, take the device lease, measure every variant through a backend."""
