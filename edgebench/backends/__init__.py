"""How a device is measured, once a transport reaches it.

The runner schedules (which variant, which round, leases, cool-downs); a backend
measures: it knows the program on the device, its argv, its probe and how to
read what it says. base.py is the contract; `python_agent` (edgebench's agent on
the device's Python) and `benchmark_model` (TFLite/LiteRT's native binary, for a
phone with no Python) implement it. devices/connect.py picks one for a device.
"""
