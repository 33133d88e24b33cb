"""What a variant file weighs compressed: gzip -9 and zstd, the figures that show what pruning buys on disk and
over the air (zeros are stored like any weight until a compressor sees them).

Sizes are kept beside the variant cache by content (sha256), so each file is compressed once.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from pathlib import Path

from edgebench.core.fileio import atomic_write_bytes

# zstd's own default level (what `zstd FILE` does): on MNIST's pruned files within 1% of level 19's size, at
# about a hundredth of its time, so cold runs stay quick.
ZSTD_LEVEL = 3
GZIP_LEVEL = 9  # gzip -9, the figure the TF pruning guide quotes


def compressed_sizes(path: Path, sha256: str, cache_folder: Path) -> dict[str, int]:
    """{"gzip": bytes, "zstd": bytes} of the file; from `cache_folder` when this content was compressed before."""
    kept = Path(cache_folder) / f"compressed-{sha256[:16]}.json"
    try:
        return {k: int(v) for k, v in json.loads(kept.read_text()).items() if k in ("gzip", "zstd")}
    except (OSError, ValueError, AttributeError):
        pass
    import zstandard

    data = Path(path).read_bytes()
    sizes = {
        "gzip": len(gzip.compress(data, GZIP_LEVEL, mtime=0)),
        "zstd": len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)),
    }
    with contextlib.suppress(OSError):  # a read-only cache: computed again next time, nothing is lost
        atomic_write_bytes(kept, json.dumps(sizes).encode())
    return sizes


def gzip_ratio(compressed: dict | None, reference: dict | None) -> float | None:
    """float32 gzipped / this file gzipped: what pruning and quantizing buy on disk; None without both sizes."""
    if not compressed or not reference or not compressed.get("gzip"):
        return None
    return reference["gzip"] / compressed["gzip"]
