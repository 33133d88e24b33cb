"""How a device is measured, once a transport reaches it.

The runner schedules (which variant, which round, leases, cool-downs); a backend
measures: it knows the program on the device, its argv, its probe and how to
read what it says: `python_agent` (edgebench's agent on the device's Python) and
`benchmark_model` (TFLite/LiteRT's native binary, for a phone with no Python).
"""

from __future__ import annotations


def make_backend(device, transport):
    """What measures on this device: the Python agent, or the native benchmark_model binary."""
    if device.backend == "benchmark_model":
        from edgebench.backends.benchmark_model import BenchmarkModelBackend

        return BenchmarkModelBackend(transport, device)
    from edgebench.backends.python_agent import PythonAgent

    return PythonAgent(transport)
