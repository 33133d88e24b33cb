"""A float .tflite -> its named quantized variants: model inspection, normalization, recipes, the variant cache."""
