"""Emulated targets: the Raspberry Pi's own software stack under qemu, reached over SSH."""
