"""What every command line of Tessera shares (``tessera`` and ``tessera eval``): settings from flags, quiet
model libraries, and the one-line error exit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from assistant.config import Settings, describe_settings_error, load_settings, parse_overrides


def settings_from(home: Path | None, pairs: list[str] | None, **flags: Any) -> Settings:
    """Settings from every source, CLI flags last (they win); a bad setting exits 2 with one line per key."""
    try:
        overrides = parse_overrides(pairs or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if home is not None:
        overrides["home"] = str(home)
    for dotted, value in flags.items():
        if value is not None:
            section, key = dotted.split("__")
            overrides.setdefault(section, {})[key] = value
    try:
        return load_settings(overrides)
    except ValidationError as exc:  # from a flag, tessera.toml or a TESSERA_* variable
        fail(describe_settings_error(exc).replace("\n", "\nerror: "))
        raise  # unreachable: fail exits


def quiet_libraries() -> None:
    """Keeps model-loading progress bars and warnings out of the answer output."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a corrupt PDF is reported once, by name
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def fail(message: str) -> None:
    """Ends the command with ``error: message`` on stderr and exit status 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)
