"""edgebench: what quantization really buys you on real edge hardware."""

__version__ = "0.1.0"
