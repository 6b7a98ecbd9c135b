"""The ``tessera`` command line: ingest documents, ask questions, search, list what is indexed."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer


from assistant.command_line import fail as _fail
from assistant.command_line import quiet_libraries as _quiet_libraries
from assistant.command_line import settings_from as _settings

app = typer.Typer(
    help="Tessera: answers questions from your documents, citing the passages it used.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich markup would swallow "[n]" and print <bool>/{question} placeholders
)

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Folder for all state (index, docstore, model cache). Env: TESSERA_HOME.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override any setting: --set retrieval.top_k=8 (repeatable)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TopKOption = Annotated[int | None, typer.Option("--top-k", "-k", help="Passages to retrieve.", min=1)]
SessionOption = Annotated[
    str | None, typer.Option("--session", help="Conversation id: memory keeps and recalls turns per session.")
]
UserOption = Annotated[str, typer.Option("--user", help="Whose memory: recall never crosses users.")]
WithoutOption = Annotated[
    list[str] | None,
    typer.Option("--without", help="Take a stage out of the pipeline, e.g. relevance_gate (repeatable; `tessera config --pipeline`)."),
]


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index (.md .txt .html .pdf .docx).")],
    home: HomeOption = None,
    set_: SetOption = None,
    prune: Annotated[bool, typer.Option("--prune", help="Also remove indexed documents whose files are gone.")] = False,
    as_json: JsonOption = False,
    engine: Annotated[str, typer.Option(help="local, or ray: parse in Ray tasks, embed in a pool of Ray actors.")] = "local",
    workers: Annotated[int, typer.Option(help="Embedding actors with --engine ray.", min=1)] = 2,
    ray_address: Annotated[str | None, typer.Option(help="A running Ray cluster for --engine ray (default: start a local one).")] = None,
) -> None:
    """Index documents so questions can be asked about them. Unchanged files are skipped, changed ones replaced."""
    settings = _settings(home, set_)
    _quiet_libraries()

    def report_error(path: str, reason: str) -> None:
        if not as_json:
            typer.secho(f"skipped {path}: {reason}", fg=typer.colors.YELLOW, err=True)

    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine must be local or ray, got {engine!r}")
    from assistant.ingest_command import run_ingest

    report = run_ingest(
        settings, paths, engine=engine, workers=workers, ray_address=ray_address, prune=prune,
        progress=sys.stderr.isatty() and not as_json, estimate=not as_json, on_error=report_error,
    )
    if as_json:
        typer.echo(json.dumps(report.__dict__ | {"ok": report.ok}, indent=2))
    else:
        typer.echo(
            f"ingested {len(report.ingested)} file(s): {report.passages} passages, {report.propositions} "
            f"propositions ({report.units_per_second:.1f} units/s); {len(report.unchanged)} unchanged; "
            f"{len(report.failed)} skipped" + (f"; {len(report.pruned)} pruned" if prune else "")
            + f" ({report.seconds:.1f} s)"
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def forget(
    paths: Annotated[list[Path], typer.Argument(help="Files whose documents to remove from the index.")],
    home: HomeOption = None,
    set_: SetOption = None,
) -> None:
    """Remove documents from the index (the files themselves are not touched)."""
    settings = _settings(home, set_)
    missing = []
    from assistant.ingest_command import open_ingestor

    with open_ingestor(settings) as ingestor:
        for path in paths:
            source = str(path.expanduser().resolve())
            if ingestor.forget(source):
                typer.echo(f"forgot {source}")
            else:
                missing.append(source)
    for source in missing:
        typer.secho(f"not indexed: {source} (see `tessera docs`)", fg=typer.colors.YELLOW, err=True)
    if missing:
        raise typer.Exit(1)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    home: HomeOption = None,
    set_: SetOption = None,
    top_k: TopKOption = None,
    generator: Annotated[str | None, typer.Option(help="Generator, e.g. gemma3-270m or openai:<model>.")] = None,
    stream: Annotated[
        bool | None,
        typer.Option("--stream/--no-stream", help="Print the answer as it is generated (default: on a terminal)."),
    ] = None,
    as_json: JsonOption = False,
    session: SessionOption = None,
    user: UserOption = "default",
    without: WithoutOption = None,
) -> None:
    """Answer from the indexed documents, citing sources as [n]."""
    settings = _settings(home, set_, retrieval__top_k=top_k, models__generator=generator)
    stream = sys.stdout.isatty() if stream is None else stream
    _quiet_libraries()
    from assistant.assistant import Assistant
    from assistant.models.base import ModelError
    from assistant.render import answer_json, answer_text
    from assistant.types import Answer
    from retrievers.store import StoreError

    assistant = Assistant(settings, without=without or ())
    backend = None
    loading = assistant.preload_generator()  # in parallel with embedding and searching the question
    try:
        if session is not None:  # a conversation: memory recalls this user's earlier turns and remembers this one
            from assistant.backend import ChatBackend

            backend = ChatBackend(settings, assistant=assistant)
            conversation = backend.chat(user, session)
            turn = conversation.stream(question)
        else:
            conversation, turn = None, assistant.stream(question)
        answer = None
        for event in turn:
            answer = event.answer or answer
            if event.text and stream and not as_json:
                typer.echo(event.text, nl=False)
    except (ModelError, StoreError, ValueError) as exc:
        _fail(str(exc))
    finally:
        loading.join()
        (backend or assistant).close()
    assert answer is not None
    if conversation is not None and conversation.memory_error:
        typer.echo(f"warning: this exchange was not saved to memory: {conversation.memory_error}", err=True)
    if as_json:
        typer.echo(json.dumps(answer_json(answer), indent=2, ensure_ascii=False))
    else:
        typer.echo(answer_text(answer, streamed=stream))


@app.command()
def chat(
    home: HomeOption = None,
    set_: SetOption = None,
    plain: Annotated[bool, typer.Option("--plain", help="A line-based REPL: one question per stdin line.")] = False,
    session: SessionOption = None,
    user: UserOption = "default",
) -> None:
    """Chat with your documents: the terminal app, or with --plain a REPL for pipes and dumb terminals."""
    settings = _settings(home, set_)
    _quiet_libraries()
    from assistant.models.base import ModelError
    from retrievers.store import StoreError
    from assistant.backend import ChatBackend, new_session_id

    session = session or new_session_id()
    try:
        backend = ChatBackend(settings)
        backend.claim()  # this chat owns the home while it runs
    except (ModelError, StoreError, ValueError) as exc:
        _fail(str(exc))
    try:
        if plain:
            _repl(backend, user, session)
        else:
            from ui.tui import TesseraApp

            TesseraApp(backend, user=user, session=session).run()
    except (ModelError, StoreError) as exc:
        _fail(str(exc))
    finally:
        backend.close()


@app.command()
def web(
    home: HomeOption = None,
    set_: SetOption = None,
    host: Annotated[str, typer.Option(help="Interface to bind; the default serves this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.", min=1, max=65535)] = 7860,
    auth: Annotated[
        str | None, typer.Option(help='Require a login: "user:pass", or a file with one "user:pass" per line.')
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest file an upload may be.", min=0.001)] = 50.0,
) -> None:
    """Serve the web chat (Gradio) on 127.0.0.1 by default; never a public share link."""
    settings = _settings(home, set_)
    _quiet_libraries()
    from assistant.backend import ChatBackend
    from ui.web import load_auth, serve

    try:
        credentials = load_auth(auth) if auth else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if host not in ("127.0.0.1", "localhost", "::1") and credentials is None:
        typer.secho(f"warning: serving on {host} without --auth: anyone who can reach it can use it", fg=typer.colors.YELLOW, err=True)
    from assistant.models.base import ModelError
    from retrievers.store import StoreError

    backend = ChatBackend(settings)
    try:  # serve() claims the home first: a home another process holds is refused with one line
        serve(backend, host=host, port=port, auth=credentials, max_upload_mb=max_upload_mb, block=True)
    except (ModelError, StoreError) as exc:
        _fail(str(exc))
    finally:
        backend.close()


def _repl(backend: Any, user: str, session: str) -> None:
    """Reads questions from stdin, one per line, and prints each cited answer followed by a blank line."""
    from assistant.render import answer_text
    from assistant.types import Answer

    chat = backend.chat(user, session)
    interactive = sys.stdin.isatty()
    if interactive:
        typer.echo(f"Tessera chat (session {session}). Ask a question; Ctrl-D to quit.")
    else:  # on stderr, so piped answers stay clean and the conversation can be resumed
        typer.echo(f"session {session} (continue it with --session {session})", err=True)
    while True:
        if interactive:
            typer.echo("> ", nl=False)
        line = sys.stdin.readline()
        if not line:
            return
        if not line.strip():
            continue
        for event in chat.stream(line.strip()):
            if event.answer is not None:
                typer.echo(answer_text(event.answer, streamed=interactive))
            elif event.text and interactive:
                typer.echo(event.text, nl=False)
        if chat.memory_error:
            typer.echo(f"warning: not saved to memory yet (retried with the next question): {chat.memory_error}", err=True)
        typer.echo("")


memory_app = typer.Typer(help="What Tessera remembers of your conversations: list, forget.", no_args_is_help=True,
                         rich_markup_mode=None)
app.add_typer(memory_app, name="memory")


@memory_app.command("list")
def memory_list(
    home: HomeOption = None,
    set_: SetOption = None,
    user: UserOption = "default",
    session: SessionOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a user's sessions, or with --session that session's remembered units."""
    backend = _memory_backend(home, set_)
    try:
        memory = backend.memory
        if session is None:
            rows = [
                {"session": s, "first": first, "last": last, "turns": turns}
                for s, first, last, turns in memory.sessions(user)
            ]
            if as_json:
                typer.echo(json.dumps(rows, indent=2))
            elif not rows:
                typer.echo(f"Nothing remembered for user {user!r}.")
            for r in [] if as_json else rows:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["last"]))
                typer.echo(f"{r['session']}  {r['turns']} turns  last {when}")
            return
        units = memory.units(user, session)
        if as_json:
            from assistant.types import to_dict

            typer.echo(json.dumps(to_dict(units), indent=2, ensure_ascii=False))
            return
        for unit in units:
            typer.echo(f"[{unit.granularity}] {' '.join(unit.text.split())[:150]}")
    finally:
        backend.close()


@memory_app.command("forget")
def memory_forget(
    home: HomeOption = None,
    set_: SetOption = None,
    user: UserOption = "default",
    session: SessionOption = None,
) -> None:
    """Forget a user's session (--session), or everything remembered for the user."""
    backend = _memory_backend(home, set_)
    try:
        removed = backend.memory.forget(user, session)
    finally:
        backend.close()
    what = f"session {session!r}" if session else "every session"
    typer.echo(f"forgot {what} of user {user!r}: {removed} memory units")


def _memory_backend(home: Path | None, pairs: list[str] | None) -> Any:
    settings = _settings(home, pairs)
    if not settings.memory.enabled:
        _fail("memory is disabled (memory.enabled = false)")
    _quiet_libraries()
    from retrievers.store import StoreError
    from assistant.backend import ChatBackend

    backend = ChatBackend(settings)
    try:
        backend.claim()  # memory belongs to the process that owns the home (e.g. a running `tessera web`)
    except StoreError as exc:
        backend.close()
        _fail(str(exc))
    return backend


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to search for.")],
    home: HomeOption = None,
    set_: SetOption = None,
    top_k: TopKOption = None,
    as_json: JsonOption = False,
    without: WithoutOption = None,
) -> None:
    """Show the passages retrieval finds for a query, without generating an answer."""
    settings = _settings(home, set_, retrieval__top_k=top_k)
    _quiet_libraries()
    from assistant.assistant import Assistant
    from assistant.render import retrieval_summary
    from assistant.types import Trace, to_dict
    from retrievers.store import StoreError

    assistant = Assistant(settings, without=without or ())
    trace = Trace()
    try:
        hits = assistant.search(query, trace)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    finally:
        assistant.close()
    summary = retrieval_summary(query, trace)
    if as_json:
        typer.echo(json.dumps({**summary, "hits": to_dict(hits), "trace": to_dict(trace)}, indent=2, ensure_ascii=False))
        return
    if summary["variants"] != [query]:
        typer.echo("Queries: " + " | ".join(summary["variants"]))
    for name, details in summary["steps"].items():
        note = f" (fell back: {details['fallback']})" if "fallback" in details else ""
        typer.echo(f"{name}: {summary['timings'][name]:.2f} s{note}")
    if not hits:
        typer.echo("No passages found. Has anything been ingested? Run: tessera ingest PATH")
    for n, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())[:160]
        typer.echo(f"[{n}] {hit.score:.4f}  {hit.location}\n    {snippet}")


@app.command()
def docs(home: HomeOption = None, set_: SetOption = None, as_json: JsonOption = False) -> None:
    """List the indexed documents (path, passages, propositions, when; --json adds the content hash)."""
    settings = _settings(home, set_)
    from ingestion.docstore import DocStore

    with DocStore(settings.docstore_path) as docstore:
        records = docstore.documents()
    if as_json:
        typer.echo(json.dumps([r.__dict__ for r in records], indent=2))
        return
    if not records:
        typer.echo(f"Nothing indexed in {settings.home}. Run: tessera ingest PATH")
    for r in records:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.ingested_at))
        typer.echo(f"{r.passages:5d} passages {r.propositions:6d} propositions  {when}  {r.source}")


@app.command()
def doctor(
    home: HomeOption = None,
    set_: SetOption = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Fix what the checks find: delete orphans, reset broken documents.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check that the docstore, the index and memory agree (e.g. after a crash); --repair fixes what it finds.

    Exit code 0: healthy (or repaired); 1: problems remain; 2: another process holds the home.
    """
    settings = _settings(home, set_)
    from dataclasses import asdict

    from assistant.doctor import Doctor
    from retrievers.store import StoreError

    fixed = after = None
    try:
        with Doctor(settings) as doc:
            report = doc.check()
            if repair and not report.healthy:
                fixed, after = doc.repair(), doc.check()
    except StoreError as exc:
        _fail(f"{exc}; tessera doctor needs the home to itself")
    final = after or report
    if as_json:
        parts = {"check": report, "repair": fixed, "after": after}
        data = {k: None if v is None else asdict(v) for k, v in parts.items()}
        typer.echo(json.dumps({**data, "healthy": final.healthy}, indent=2, default=str))
    else:
        typer.echo(f"Checking {settings.home}")
        _print_checks(fixed or report)
        if after is not None:
            typer.echo("After repair: " + ("healthy." if after.healthy else "problems remain:"))
            if not after.healthy:
                _print_checks(after, problems_only=True)
        elif repair:
            typer.echo("Nothing to repair.")
        if sources := (fixed or report).reingest:
            verb = "Re-ingest" if fixed else "After --repair, re-ingest"
            typer.echo(f"{verb} these documents: tessera ingest " + " ".join(shlex.quote(s) for s in sources))
        if not final.healthy and not repair:
            typer.echo("Run `tessera doctor --repair` to fix.")
    raise typer.Exit(0 if final.healthy else 1)


@app.command()
def migrate(
    to: Annotated[str, typer.Option("--to", help="The Qdrant server URL (http://host:6333), or a folder for qdrant-client's local mode.")],
    home: HomeOption = None,
    set_: SetOption = None,
    api_key: Annotated[str | None, typer.Option(help="The server's API key (also read from QDRANT_API_KEY).")] = None,
) -> None:
    """Copy the embedded index and memory to a Qdrant server (nothing is re-embedded)."""
    settings = _settings(home, set_)
    if settings.store.qdrant_url:
        _fail(f"this home already uses the server {settings.store.qdrant_url} (store.qdrant_url): nothing embedded to migrate")
    from qdrant_client import QdrantClient

    from memory.storage import shard_path
    from retrievers.migrate import copy_shard
    from retrievers.client_store import ClientStore
    from retrievers.store import EdgeStore, StoreError

    is_url = to.startswith(("http://", "https://"))
    client = QdrantClient(url=to, api_key=api_key or os.environ.get("QDRANT_API_KEY")) if is_url else QdrantClient(path=to)
    pairs = [
        (EdgeStore(settings.qdrant_path, settings.store.collection), settings.store.collection),
        (EdgeStore(shard_path(settings), "memory"), f"{settings.store.collection}-memory"),
    ]
    try:
        for source, collection in pairs:
            with source:
                copied = copy_shard(source, ClientStore(client, collection), progress=sys.stderr.isatty())
            typer.echo(f"copied {copied.points} points from {copied.source} into collection {collection!r}")
    except StoreError as exc:
        _fail(str(exc))
    finally:
        client.close()
    if is_url:
        typer.echo(f"Now use it: export TESSERA_STORE__QDRANT_URL={to} (or store.qdrant_url in tessera.toml); the home's "
                   "docstore and memory records stay where they are")


def _print_checks(report: Any, *, problems_only: bool = False) -> None:
    """One line per check (ok/PROBLEM/warning with counts), and the problems and fix under each failing one."""
    for check in report.checks:
        if check.ok:
            if not problems_only:
                typer.echo(f"  ok       {check.title} ({check.checked} {check.noun} checked)")
            continue
        if check.severity == "warning":
            label, colour = "warning", typer.colors.YELLOW
        else:
            label, colour = ("REPAIRED", typer.colors.GREEN) if report.repaired else ("PROBLEM", typer.colors.RED)
        counts = f"{len(check.problems)} found ({check.checked} {check.noun} checked)"
        typer.secho(f"  {label:<8} {check.title}: {counts}", fg=colour)
        for line in check.describe():
            typer.echo(f"             - {line}")
        typer.echo(f"             {'done' if report.repaired else 'fix'}: {check.fix}")


@app.command()
def config(
    home: HomeOption = None,
    set_: SetOption = None,
    pipeline: Annotated[bool, typer.Option("--pipeline", help="Print the stages a question runs through instead.")] = False,
    without: WithoutOption = None,
) -> None:
    """Print the effective settings (defaults ← tessera.toml ← TESSERA_* ← flags) as JSON, or with --pipeline
    the stages a question runs through with them, in order."""
    settings = _settings(home, set_)
    if pipeline:
        from assistant.pipeline_view import pipeline_lines

        try:
            typer.echo("\n".join(pipeline_lines(settings, without or ())))
        except ValueError as exc:  # a stage taken out that another needs
            _fail(str(exc))
        return
    typer.echo(settings.model_dump_json(indent=2, exclude={"models": {"openai_api_key"}, "store": {"qdrant_api_key"}}))


# The CLI is the composition root: it alone may reach up into eval/ to mount `tessera eval`.
from eval.cli import eval_app  # noqa: E402

app.add_typer(eval_app, name="eval")


def main(argv: list[str] | None = None) -> None:
    """The ``tessera`` command: every failure ends in one line that says what failed and how to fix it.

    Tessera's own errors already say so (and exit 2); anything else (a broken install, a file the system
    refuses, a bug) is summarised by `describe_failure`. ``--debug`` anywhere on the line (or
    ``TESSERA_DEBUG=1``) shows the traceback instead.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("TESSERA_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        app(args=args, prog_name="tessera")
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        raise SystemExit(130) from None
    except Exception as exc:
        if debug:
            raise
        typer.secho(f"error: {describe_failure(exc)} (run again with --debug for the traceback)", fg=typer.colors.RED, err=True)
        raise SystemExit(1) from None


def describe_failure(exc: BaseException) -> str:
    """One line for an unexpected error: what failed, and the fix where the kind of error suggests one."""
    if isinstance(exc, ImportError):
        missing = exc.name or str(exc)
        return f"a Python package is missing or broken ({missing}); reinstall with: bash scripts/setup.sh"
    if isinstance(exc, MemoryError):
        return "ran out of memory; try a smaller model (models.generator) or fewer files at a time"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"{reason}{where}; check that the path exists, is readable and the disk has space"
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}"


if __name__ == "__main__":
    main()
