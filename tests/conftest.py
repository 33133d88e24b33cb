"""Shared fixtures: the real MNIST zoo model and its variants, built once per session."""

from __future__ import annotations

import pytest

from edgebench.dataset import load_dataset
from edgebench.variants import VARIANT_NAMES, Variant, build_variants
from edgebench.zoo import load_zoo_model


@pytest.fixture(scope="session")
def mnist():
    return load_zoo_model("mnist")


@pytest.fixture(scope="session")
def mnist_test_set(mnist):
    return load_dataset(mnist.dataset_path)


@pytest.fixture(scope="session")
def variant_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("variant-cache")


@pytest.fixture(scope="session")
def mnist_variants(mnist, variant_cache) -> dict[str, Variant]:
    """Every variant of the zoo MNIST model, quantized for real into a session cache."""
    results = build_variants(mnist, VARIANT_NAMES, cache_dir=variant_cache)
    failures = [r for r in results if not isinstance(r, Variant)]
    assert not failures, failures
    return {r.name: r for r in results}
