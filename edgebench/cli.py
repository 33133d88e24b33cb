"""The `edgebench` command: argument parsing and printing, one function per subcommand.

This is the only module that prints. Errors a user can cause arrive as
EdgebenchError and leave as one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from edgebench import __version__
from edgebench.errors import EdgebenchError

EXIT_OK = 0
EXIT_PARTIAL = 1  # the command ran, but some variant failed
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    stderr = Console(stderr=True)
    try:
        return args.handler(args)
    except EdgebenchError as error:
        stderr.print(f"edgebench: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return error.exit_code
    except KeyboardInterrupt:
        stderr.print("edgebench: interrupted", markup=False, highlight=False)
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgebench", description="What quantization really buys you on edge hardware."
    )
    parser.add_argument("--version", action="version", version=f"edgebench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    quantize = commands.add_parser("quantize", help="make the quantized variants of a float .tflite")
    quantize.add_argument("model", help="a zoo name (mnist) or a float .tflite file")
    quantize.add_argument("--variants", help="comma-separated subset (default: all)")
    quantize.add_argument(
        "--calibration", type=Path, help=".npz with an 'x' array, for the static int8/int16x8 recipes"
    )
    quantize.add_argument("-o", "--output", type=Path, help="also copy the variant files into this folder")
    quantize.add_argument("--evaluate", action="store_true", help="add top-1 on the evaluation set (on this host)")
    quantize.add_argument("--dataset", type=Path, help=".npz with 'x' and 'y' for --evaluate (zoo models ship one)")
    quantize.add_argument("--samples", type=int, help="evaluate on the first N samples only")
    quantize.add_argument("--cache-dir", type=Path, help="variant cache (default: ~/.cache/edgebench/variants)")
    quantize.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    quantize.set_defaults(handler=cmd_quantize)
    return parser


def cmd_quantize(args: argparse.Namespace) -> int:
    from edgebench.dataset import load_dataset
    from edgebench.evaluate import evaluate_file
    from edgebench.report.variants_table import variants_table
    from edgebench.variants import Variant, build_variants, export_variants, parse_variant_names
    from edgebench.zoo import resolve_model

    names = parse_variant_names(args.variants)
    if args.samples is not None and args.samples < 1:
        raise EdgebenchError("--samples must be at least 1")
    source = resolve_model(args.model, dataset=args.dataset, calibration=args.calibration)
    dataset = None
    if args.evaluate:
        if source.dataset_path is None:
            raise EdgebenchError("--evaluate needs an evaluation set: pass --dataset data.npz")
        dataset = load_dataset(source.dataset_path)

    status = Console(stderr=True)
    with status.status("quantizing") as spinner:
        results = build_variants(
            source, names, cache_dir=args.cache_dir, on_variant=lambda name: spinner.update(f"quantizing: {name}")
        )
        built = [r for r in results if isinstance(r, Variant)]
        accuracies = None
        if dataset is not None:
            accuracies = {}
            for variant in built:
                spinner.update(f"evaluating: {variant.name}")
                accuracies[variant.name] = evaluate_file(variant.path, dataset, args.samples)
    if args.output:
        export_variants(built, args.output, source.name)

    table = variants_table(source.name, results, accuracies)
    _emit(args.format, table, _quantize_document(source, results, accuracies))
    return EXIT_OK if len(built) == len(results) else EXIT_PARTIAL


def _quantize_document(source, results, accuracies) -> dict:
    from edgebench.variants import Variant

    variants = []
    for result in results:
        entry = {"name": result.name}
        if isinstance(result, Variant):
            entry |= {"path": str(result.path), "bytes": result.size_bytes, "sha256": result.sha256}
            entry |= {"recipe": result.recipe, "from_cache": result.from_cache}
            if accuracies and result.name in accuracies:
                accuracy = accuracies[result.name]
                entry |= {"top1": accuracy.top1, "correct": accuracy.correct, "evaluated": accuracy.total}
        else:
            entry["error"] = result.message
        variants.append(entry)
    return {"model": source.name, "model_path": str(source.model_path), "variants": variants}


def _emit(output_format: str, table, document: dict) -> None:
    if output_format == "json":
        print(json.dumps(document, indent=2))
    elif output_format == "markdown":
        from edgebench.report.markdown import markdown_lines

        print("\n".join(markdown_lines(table)))
    else:
        from edgebench.report.terminal import rich_table

        # Piped into a file or a CI log, rich would squeeze the table to 80 columns.
        Console(width=None if sys.stdout.isatty() else 160).print(rich_table(table))


if __name__ == "__main__":
    sys.exit(main())
