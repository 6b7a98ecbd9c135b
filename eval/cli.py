"""`tessera eval`: convert public QA sets, run evaluations, compare runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

eval_app = typer.Typer(help="Evaluate Tessera on a question set: convert, run, compare.", no_args_is_help=True,
                       rich_markup_mode=None)  # plain help, as the main app


@eval_app.command("convert")
def convert_cmd(
    fmt: Annotated[str, typer.Argument(help="squad, squad-v2, hotpotqa, musique, rgb, rgb-sources, locomo or amnesty-qa.")],
    source: Annotated[Path, typer.Argument(help="The source file (or its folder).")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write corpus.jsonl, questions.jsonl, dataset.json.")],
    limit: Annotated[int | None, typer.Option(help="Sample this many questions.", min=1)] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    distractors: Annotated[int | None, typer.Option(help="Non-evidence documents to keep (default per format).", min=0)] = None,
) -> None:
    """Write a dataset folder in Tessera's format from a public QA set."""
    from eval.converters import FORMATS, convert
    from eval.datasets import DatasetError, save_dataset

    if fmt not in FORMATS:
        raise typer.BadParameter(f"unknown format {fmt!r}; expected one of {', '.join(sorted(FORMATS))}")
    try:
        dataset = convert(fmt, source, limit=limit, seed=seed, distractors=distractors)
    except (DatasetError, OSError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    save_dataset(dataset, out_dir)
    typer.echo(f"wrote {len(dataset.questions)} questions and {len(dataset.corpus)} documents to {out_dir}")
    for warning in dataset.manifest.get("warnings", []):
        typer.secho(f"note: {warning}", fg=typer.colors.YELLOW, err=True)


@eval_app.command("run")
def run_cmd(
    data_dir: Annotated[Path, typer.Argument(help="A dataset folder (from `tessera eval convert`).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: answers.jsonl, summary.json, report.md.")],
    limit: Annotated[int | None, typer.Option(help="Run a seeded sample of this many questions.", min=1)] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    pipeline: Annotated[str, typer.Option(help="tessera, or vanilla (plain llama-index, same models).")] = "tessera",
    home: Annotated[Path | None, typer.Option("--home", help="Tessera home (model cache, cached eval indexes).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting, e.g. retrieval.mode=dense.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    retrieval_only: Annotated[
        bool, typer.Option("--retrieval-only", help="Retrieve only, no answers: retrieval metrics and latency on the answerable questions.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Start over when --out holds answers of another configuration.")] = False,
    without: Annotated[
        list[str] | None,
        typer.Option("--without", help="Take a stage out of the pipeline (an ablation; repeatable): see `tessera config --pipeline`."),
    ] = None,
    engine: Annotated[str, typer.Option(help="local, or ray: answer with a pool of Ray actors, each with a copy of the index.")] = "local",
    workers: Annotated[int, typer.Option(help="Ray actors with --engine ray.", min=1)] = 2,
    ray_address: Annotated[str | None, typer.Option(help="A running Ray cluster for --engine ray (default: start a local one).")] = None,
) -> None:
    """Answer every question of a dataset and write metrics, a summary and a report. Resumes if interrupted
    (with the same settings: a different configuration stops with a message, or starts over with --force)."""
    from assistant.command_line import quiet_libraries, settings_from
    from eval.runner import EvalRunner, RunConfig

    if pipeline not in ("tessera", "vanilla"):
        raise typer.BadParameter(f"--pipeline must be tessera or vanilla, got {pipeline!r}")
    if without and pipeline == "vanilla":
        raise typer.BadParameter("--without takes stages out of Tessera's pipeline; the vanilla one has none to take out")
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine must be local or ray, got {engine!r}")
    settings = settings_from(home, set_)
    quiet_libraries()
    try:
        config = RunConfig(
            data_dir, out, pipeline, limit, seed, progress, retrieval_only, force, tuple(without or ()),  # type: ignore[arg-type]
            engine, workers, ray_address,
        )
        runner = EvalRunner(settings, config)
        summary = runner.run()
    except (FileNotFoundError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    metrics = summary["metrics"]
    shown = [k for k in ("recall@5", "recall@20", "ndcg@10", "em", "f1") if k in metrics]
    typer.echo(", ".join(f"{k} {metrics[k]['mean']:.3f}" for k in shown))
    typer.echo(f"report: {out / 'report.md'}")


@eval_app.command("compare")
def compare_cmd(
    run_a: Annotated[Path, typer.Argument(help="Baseline run folder.")],
    run_b: Annotated[Path, typer.Argument(help="Run folder to compare with it.")],
    out: Annotated[Path | None, typer.Option(help="Where to write compare.png and compare.json (default: RUN_B).")] = None,
) -> None:
    """Per-metric deltas B − A over shared questions, with paired randomisation p-values and a plot."""
    from eval.compare import compare_runs, format_table, plot_deltas

    try:
        deltas = compare_runs(run_a, run_b)
    except (FileNotFoundError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    typer.echo(format_table(deltas, run_a.name, run_b.name))
    folder = out or run_b
    folder.mkdir(parents=True, exist_ok=True)
    plot_deltas(deltas, folder / "compare.png", f"{run_b.name} vs {run_a.name}")
    (folder / "compare.json").write_text(json.dumps([d.__dict__ for d in deltas], indent=2))
    typer.echo(f"plot: {folder / 'compare.png'}")


@eval_app.command("table")
def table_cmd(runs: Annotated[list[Path], typer.Argument(help="Run folders, one table row each.")]) -> None:
    """Print the headline metrics of several runs as one Markdown table (for docs and ablations)."""
    from eval.compare import summary_table

    try:
        typer.echo(summary_table(runs))
    except FileNotFoundError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
