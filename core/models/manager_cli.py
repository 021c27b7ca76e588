"""``python -m core models list|download|verify``: the model manager from a terminal or a farm script.

The same catalog and downloader as the Blender preferences. ``download`` is an explicit request, so it may
use the network unless ``--offline`` is given (then it prints which files to put where); progress goes to
stderr, or as JSON lines to stdout with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..errors import EXIT_MISSING_MODEL, EXIT_OK, InputError
from .catalog import CatalogModel, active_catalog, find_model, load_catalog, with_base_url
from .download import DownloadProgress, destination, download_models, model_status


def add_models_parser(commands, models_dir_help: str) -> argparse.ArgumentParser:
    """Add the ``models`` command (list, download, verify) to the CLI's subparsers."""
    models = commands.add_parser("models", help="list, download and verify the networks Photo3D uses")
    actions = models.add_subparsers(dest="models_command", required=True)
    for name, text in (
        ("list", "each model's task, licence, size and whether it is in the models folder"),
        ("download", "download models (the defaults when none is named), resuming interrupted downloads"),
        ("verify", "check every file of the models against its size and SHA-256"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("keys", nargs="*", help="catalog keys (default: the default models)")
        action.add_argument("--models-dir", help=models_dir_help)
        action.add_argument("--catalog", help="JSON catalog to use instead of the built-in one")
        action.add_argument("--base-url", help="fetch every file from BASE_URL/<path> (a mirror)")
        action.add_argument("--json", action="store_true", help="machine-readable output (JSON lines)")
        if name == "download":
            action.add_argument("--offline", action="store_true", help="do not download: say what to fetch")
    return models


def _catalog(args: argparse.Namespace) -> tuple[CatalogModel, ...]:
    catalog = load_catalog(args.catalog) if args.catalog else active_catalog()
    return with_base_url(catalog, args.base_url) if args.base_url else catalog


def _chosen(args: argparse.Namespace, catalog: tuple[CatalogModel, ...]) -> list[CatalogModel]:
    if args.keys:
        return [find_model(key, catalog) for key in args.keys]
    if args.models_command == "list":
        return list(catalog)
    return [model for model in catalog if model.default]


def _size_text(model: CatalogModel) -> str:
    if model.size is not None:
        return f"{model.size / 1e6:.0f} MB"
    return f"about {model.approx_mb} MB" if model.approx_mb else "size unknown"


def run_models(args: argparse.Namespace, models_dir: str | None) -> int:
    """Run a ``models`` action; returns the exit status (3 when a model is missing or fails to verify)."""
    if not models_dir:
        raise InputError("no models folder: pass --models-dir or set PHOTO3D_MODELS_DIR")
    catalog = _catalog(args)
    chosen = _chosen(args, catalog)
    if args.models_command == "download":
        return _download(args, chosen, models_dir)
    bad = 0
    for model in chosen:
        status = model_status(models_dir, model, check_sum=args.models_command == "verify")
        bad += status != "ok"
        if args.json:
            row = {
                "key": model.key,
                "task": model.task,
                "title": model.title,
                "licence": model.licence,
                "size": model.size,
                "approx_mb": model.approx_mb,
                "default": model.default,
                "status": status,
                "files": [str(destination(models_dir, item)) for item in model.files],
            }
            print(json.dumps(row), flush=True)
        else:
            mark = "*" if model.default else " "
            print(f"{mark} {model.key:<18} {model.task:<13} {status:<18} {model.licence:<11} "
                  f"{_size_text(model):<13} {model.title}")  # fmt: skip
    if not args.json:
        print(f"(* default; models folder {models_dir})")
    if args.models_command == "verify" and bad:
        return EXIT_MISSING_MODEL
    return EXIT_OK


def _download(args: argparse.Namespace, chosen: list[CatalogModel], models_dir: str) -> int:
    shown: dict[str, float] = {}

    def report(event: DownloadProgress) -> None:
        if args.json:
            print(json.dumps({"event": "progress", "model": event.model, "path": event.path, "done": event.done,
                              "total": event.total, "message": event.message}), flush=True)  # fmt: skip
            return
        now = time.monotonic()
        if event.message or now - shown.get(event.path, 0.0) >= 1.0:
            shown[event.path] = now
            share = f"{100 * event.fraction:5.1f} %" if event.fraction is not None else f"{event.done / 1e6:.0f} MB"
            print(f"  {event.path}: {event.message or share}", file=sys.stderr, flush=True)

    if args.offline:
        download_models(chosen, models_dir, online=False)  # raises, listing every file to fetch, unless all there
    for model in chosen:
        if not args.json:
            print(f"{model.key}: {model.title} ({model.licence}, {_size_text(model)})", file=sys.stderr)
        paths = download_models([model], models_dir, online=True, progress=report)
        if args.json:
            print(json.dumps({"event": "done", "model": model.key, "files": [str(p) for p in paths]}), flush=True)
    return EXIT_OK
