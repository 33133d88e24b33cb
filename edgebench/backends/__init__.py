"""How a device is measured, once a transport reaches it.

The runner schedules (which variant, which round, leases, cool-downs); a backend
measures: it knows the program on the device, its argv, its probe and how to
read what it says. `python_agent` is the one backend today; the native
`benchmark_model` binary is the next (phones with no Python).
"""
