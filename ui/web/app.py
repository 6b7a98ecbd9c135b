"""The Gradio web chat: layout and wiring. Each browser tab is its own session of its signed-in user; answers
stream in with ``[n]`` citations, the cited passages and the trace sit beside them, and uploads are ingested."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.models.base import Generator
from assistant.types import Answer
from assistant.backend import ChatBackend, new_session_id
from ui.web.render import (
    DOCUMENT_HEADERS,
    document_choices,
    document_rows,
    ingest_html,
    source_choices,
    sources_html,
    status_html,
    trace_html,
)
from ui.web.uploads import save_uploads

log = logging.getLogger(__name__)

CSS = """
#sources .source { border-left: 3px solid var(--border-color-primary); padding: 4px 10px; margin: 6px 0; }
#sources .source.selected { border-left-color: var(--color-accent); background: var(--background-fill-secondary); }
#sources .src-meta { font-size: .8em; color: var(--body-text-color-subdued); overflow-wrap: anywhere; }
#sources .passage { white-space: pre-wrap; margin-top: 6px; line-height: 1.5; }
#sources mark { background: #fde68a; color: #111; padding: 0 2px; border-radius: 2px; }
#sources .unsupported, #ingest .failed { color: var(--error-text-color, #b91c1c); }
.hint { color: var(--body-text-color-subdued); font-style: italic; }
#trace h4 { margin: 10px 0 4px; }
#trace blockquote { margin: 4px 0; padding-left: 8px; border-left: 3px solid var(--border-color-primary); }
#trace table { border-collapse: collapse; font-size: .9em; }
#trace td, #trace th { border: 1px solid var(--border-color-primary); padding: 2px 8px; text-align: left; }
#session-info { text-align: right; color: var(--body-text-color-subdued); }
#documents td, #documents th { font-size: 12px; }
#documents th, #documents th * { white-space: nowrap; word-break: keep-all; overflow-wrap: normal; }
#documents td span[title] { overflow-wrap: anywhere; }
#title h2 { white-space: nowrap; }
@media (max-width: 640px) {
  #title { min-width: 0 !important; }
  #session-info { display: none; }
  /* On a phone every shown header and value stays whole: a smaller type, and the facts count gives way. */
  #documents td, #documents th, #documents [role=gridcell] { font-size: 11px; }
  #documents th, #documents [role=gridcell] { padding-left: 4px !important; padding-right: 4px !important; }
  #documents th:nth-child(3), #documents [role=gridcell][data-col="2"] { display: none; }
}
"""

_BACKENDS = {"transformers", "openai", "folder", "fake"}  # registry prefixes, not names to pick from


@dataclass(frozen=True)
class Overrides:
    """The settings a tab may change: search mode, HyDE, expansion, context order, top-k, generator."""

    mode: str
    hyde: bool
    expansion: str
    order: str
    top_k: int
    generator: str

    @classmethod
    def of(cls, s: Settings) -> Overrides:
        """The values ``s`` already has."""
        return cls(s.retrieval.mode, s.query.hyde, s.query.expansion, s.context.order, s.retrieval.top_k, s.models.generator)

    def apply(self, s: Settings) -> Settings:
        """``s`` with these values."""
        return s.model_copy(
            update={
                "retrieval": s.retrieval.model_copy(update={"mode": self.mode, "top_k": self.top_k}),
                "query": s.query.model_copy(update={"hyde": self.hyde, "expansion": self.expansion}),
                "context": s.context.model_copy(update={"order": self.order}),
                "models": s.models.model_copy(update={"generator": self.generator}),
            }
        )

    def with_controls(self, hybrid: bool, hyde: bool, expansion: str, attention: bool, top_k: float, model: str) -> Overrides:
        """These defaults changed only where a control differs from its default position."""
        mode = self.mode if hybrid == (self.mode == "hybrid") else ("hybrid" if hybrid else "dense")
        order = self.order if attention == (self.order == "attention") else ("attention" if attention else "reversed")
        return Overrides(mode, bool(hyde), expansion or "off", order, int(top_k), (model or "").strip() or self.generator)


def offered_generators(default: str) -> list[str]:
    """The generators a page may pick: the configured one, then the bundled registry names. Never a folder,
    an endpoint or any other value a browser sends: that could load arbitrary files, exhaust memory or spend
    the server's endpoint key (docs/RELIABILITY.md)."""
    from assistant.models.registry import generator_names

    return [default] + [n for n in generator_names() if n not in _BACKENDS and n != default]


class TabAssistants:
    """One `Assistant` per set of overrides, sharing the backend assistant's embedder, store and generator.

    Args:
        base: The backend's assistant.
        offered: The generators a request may name (default: `offered_generators`); any other is refused.
    """

    def __init__(self, base: Assistant, offered: Sequence[str] | None = None) -> None:
        self.base = base
        self.defaults = Overrides.of(base.settings)
        self.offered = list(offered) if offered is not None else offered_generators(self.defaults.generator)
        self._made: dict[Overrides, Assistant] = {}
        self._generators: dict[str, Generator] = {}
        self._lock = threading.Lock()

    def get(self, overrides: Overrides) -> Assistant:
        """The backend's assistant when nothing differs from its settings, else one with the overrides."""
        if overrides == self.defaults:
            return self.base
        if overrides.generator != self.defaults.generator and overrides.generator not in self.offered:
            raise ValueError(f"generator {overrides.generator!r} is not offered here; choose one of: {', '.join(self.offered)}")
        with self._lock:
            if overrides not in self._made:
                settings = overrides.apply(self.base.settings)
                if overrides.generator == self.defaults.generator:
                    generator = self.base.generator
                else:
                    from assistant.models.registry import create_generator

                    if overrides.generator not in self._generators:
                        self._generators[overrides.generator] = create_generator(settings, overrides.generator)
                    generator = self._generators[overrides.generator]
                self._made[overrides] = Assistant(
                    settings, embedder=self.base.embedder, generator=generator, store=self.base.store
                )
            return self._made[overrides]


def friendly(exc: Exception) -> str:
    """An error as one line for the page: Tessera's own errors already say how to fix them."""
    log.warning("web request failed", exc_info=exc)
    known = isinstance(exc, (RuntimeError, ValueError, OSError))  # ModelError, StoreError, bad input, files
    return str(exc) if known and str(exc) else f"{type(exc).__name__}: {exc}"


def build_app(backend: ChatBackend, *, max_upload_mb: float = 50) -> gr.Blocks:
    """The web chat over ``backend``. Launch it with ``css=CSS`` (Gradio 6 takes css at launch), or use `serve`."""
    assistants = TabAssistants(backend.assistant)
    d = assistants.defaults
    uploads = backend.settings.home / "uploads"
    models = assistants.offered

    def documents() -> tuple[Any, Any]:
        try:
            records = backend.documents()
        except Exception as exc:  # an unreadable docstore: say so, keep the page
            gr.Warning(friendly(exc))
            records = []
        return document_rows(records), gr.update(choices=document_choices(records), value=None)

    def user_of(request: gr.Request | None) -> str:
        return (request.username if request is not None else None) or "default"

    def earlier_chats(user: str, current: str | None = None) -> Any:
        """The user's chats with at least one question, newest first, to reopen one."""
        try:
            summaries = [s for s in backend.session_summaries(user) if s.title]
        except Exception as exc:  # an unreadable memory: say so, keep the page
            gr.Warning(friendly(exc))
            summaries = []
        choices = [(s.label(), s.id) for s in reversed(summaries)]
        return gr.update(choices=choices, value=current if current in {c[1] for c in choices} else None)

    def started(request: gr.Request) -> tuple[Any, ...]:
        session = new_session_id()
        return session, f"{user_of(request)} · session {session}", *documents(), earlier_chats(user_of(request))

    def new_chat(request: gr.Request) -> tuple[Any, ...]:
        session = new_session_id()
        empty = gr.update(choices=[], value=None)
        cleared = ([], None, "", empty, sources_html(None), trace_html("", None), "")
        return session, f"{user_of(request)} · session {session}", *cleared, earlier_chats(user_of(request))

    def reopen_chat(session: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Shows an earlier chat; the next question continues it (memory recalls it as that session)."""
        if not session:
            return (gr.skip(),) * 10
        user = user_of(request)
        messages = []
        for question, answer_text in backend.transcript(user, session):
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer_text}]
        empty = gr.update(choices=[], value=None)
        shown = (messages, None, "", empty, sources_html(None), trace_html("", None), "")
        return session, f"{user} · session {session}", *shown, earlier_chats(user, session)

    def ask(
        question: str, history: list, session: str,
        hybrid: bool, hyde: bool, expansion: str, attention: bool, top_k: float, model: str,
        request: gr.Request,
    ):
        """Streams the answer into the chat, then shows its sources, trace and status."""
        question = (question or "").strip()
        if not question:
            gr.Warning("Type a question first.")
            return
        session = session or new_session_id()
        history = [*(history or []), {"role": "user", "content": question}]
        turn = sum(1 for m in history if m["role"] == "user")
        placeholder = {"role": "assistant", "content": "…"}
        yield {chatbot: [*history, placeholder], question_box: "", session_state: session, status: status_html(turn)}
        text, answer = "", None
        try:
            chat = backend.chat(user_of(request), session)
            chat.assistant = assistants.get(d.with_controls(hybrid, hyde, expansion, attention, top_k, model))
            for event in chat.stream(question):
                if event.answer is not None:
                    answer = event.answer
                elif event.text:
                    text += event.text
                    yield {chatbot: [*history, {"role": "assistant", "content": text}]}
        except Exception as exc:  # a model, endpoint or store failure ends this answer, not the page
            message = friendly(exc)
            gr.Warning(message)
            failed = {"role": "assistant", "content": f"⚠ {message}"}
            yield {chatbot: [*history, failed], status: status_html(turn, failed=True)}
            return
        if answer is None:  # a stream always ends with its answer; say so rather than show nothing
            failed = {"role": "assistant", "content": "⚠ the answer was cut short; ask again"}
            yield {chatbot: [*history, failed], status: status_html(turn, failed=True)}
            return
        first = answer.citations[0].n if answer.citations else None
        yield {
            chatbot: [*history, {"role": "assistant", "content": answer.text}],
            chats: earlier_chats(user_of(request), session),
            answer_state: answer,
            question_state: question,
            picker: gr.update(choices=source_choices(answer), value=first),
            sources: sources_html(answer, first),
            trace: trace_html(question, answer),
            status: status_html(turn, answer),
        }

    def upload_files(files: list | None, progress=gr.Progress(track_tqdm=True)) -> tuple[Any, ...]:
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files or []]
        saved, refused = save_uploads(paths, uploads, max_mb=max_upload_mb)
        report = None
        if saved:
            progress(0, desc="ingesting")
            try:
                report = backend.ingest(saved, progress=True)
            except Exception as exc:
                refused += [(p.name, friendly(exc)) for p in saved]
        if refused:
            gr.Warning(f"{len(refused)} file(s) not ingested: see the list under the upload")
        return ingest_html(report, refused), *documents(), None

    def delete_document(source: str | None) -> tuple[Any, ...]:
        if not source:
            gr.Warning("Pick a document to delete first.")
            return gr.skip(), gr.skip(), gr.skip()
        try:
            removed = backend.forget_document(source)
        except Exception as exc:
            gr.Warning(friendly(exc))
            return gr.skip(), gr.skip(), gr.skip()
        note = f"Removed {Path(source).name}." if removed else f"{Path(source).name} was not indexed."
        return f'<div class="ingest">{escape(note)}</div>', *documents()

    def picked_row(evt: gr.SelectData) -> Any:
        """Selecting a row of the documents table picks that document for deletion."""
        try:
            records = backend.documents()
            return gr.update(value=records[evt.index[0]].source)
        except (IndexError, TypeError, OSError, ValueError):
            return gr.skip()

    with gr.Blocks(title="Tessera", analytics_enabled=False) as app:
        session_state = gr.State("")
        answer_state = gr.State(None)
        question_state = gr.State("")
        with gr.Row():
            gr.Markdown("## Tessera", elem_id="title")
            session_info = gr.Markdown("", elem_id="session-info")
            new_button = gr.Button("New chat", size="sm", scale=0, elem_id="new-chat")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Chat", height=460, elem_id="chat", buttons=["copy"], placeholder="Ask a question about your documents."
                )
                question_box = gr.Textbox(
                    placeholder="Ask about your documents…", show_label=False, submit_btn="Ask", elem_id="question"
                )
                status = gr.HTML("", elem_id="answer-status")
                with gr.Accordion("Why this answer", open=False, elem_id="why"):
                    trace = gr.HTML(trace_html("", None), elem_id="trace")
                with gr.Accordion("Settings for this tab", open=False, elem_id="settings"):
                    with gr.Row():
                        hybrid = gr.Checkbox(d.mode == "hybrid", label="Hybrid search (dense + BM25)", elem_id="opt-hybrid")
                        hyde = gr.Checkbox(d.hyde, label="HyDE", elem_id="opt-hyde")
                        attention = gr.Checkbox(d.order == "attention", label="Attention sorting", elem_id="opt-attention")
                    with gr.Row():
                        expansion = gr.Radio(sorted({"off", "few-shot", d.expansion}), value=d.expansion, label="LLM query expansion")
                        top_k = gr.Slider(1, max(20, d.top_k), value=d.top_k, step=1, label="Passages shown to the model (top-k)")
                        model = gr.Dropdown(models, value=d.generator, allow_custom_value=False, label="Generator", elem_id="opt-model")
            with gr.Column(scale=2):
                with gr.Accordion("Earlier chats", open=False, elem_id="chats-box"):
                    chats = gr.Radio([], show_label=False, elem_id="chats")
                picker = gr.Radio([], label="Cited sources", elem_id="source-pick")
                sources = gr.HTML(sources_html(None), elem_id="sources")
                with gr.Accordion("Documents", open=True, elem_id="docs"):
                    upload = gr.File(
                        file_count="multiple", label=f"Add documents (up to {max_upload_mb:g} MB each)", height=170,
                        elem_id="upload",
                    )
                    ingest_out = gr.HTML("", elem_id="ingest")
                    table = gr.Dataframe(
                        headers=DOCUMENT_HEADERS, datatype=["html", "number", "number", "str"], interactive=False,
                        column_widths=["40%", "26%", "12%", "22%"], elem_id="documents",
                    )
                    with gr.Row():
                        doc_pick = gr.Dropdown([], label="Document", elem_id="doc-pick", scale=3)
                        delete = gr.Button("Delete", variant="stop", elem_id="delete", scale=1)

        app.load(started, None, [session_state, session_info, table, doc_pick, chats])  # a new session per page load
        cleared = [session_state, session_info, chatbot, answer_state, question_state, picker, sources, trace, status, chats]
        new_button.click(new_chat, None, cleared)
        chatbot.clear(new_chat, None, cleared)  # the chat's own trash button also starts a new session
        chats.input(reopen_chat, chats, cleared)
        controls = [question_box, chatbot, session_state, hybrid, hyde, expansion, attention, top_k, model]
        # One set of models and one index: answers, uploads and deletes share one queue and take turns
        # (a per-listener limit would let an upload run while an answer is generated).
        serial = {"concurrency_limit": 1, "concurrency_id": "models-and-index"}
        question_box.submit(
            ask, controls, [chatbot, question_box, session_state, answer_state, question_state, picker, sources, trace, status, chats],
            **serial,
        )
        picker.input(lambda answer, n: sources_html(answer, n), [answer_state, picker], sources)
        upload.upload(upload_files, upload, [ingest_out, table, doc_pick, upload], **serial)
        delete.click(delete_document, doc_pick, [ingest_out, table, doc_pick], **serial)
        table.select(picked_row, None, doc_pick)
    return app


def serve(
    backend: ChatBackend,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: list[tuple[str, str]] | None = None,
    max_upload_mb: float = 50,
    block: bool = True,
) -> gr.Blocks:
    """Serves the web chat on ``http://host:port`` (never a public share link).

    Args:
        backend: The process's chats and documents.
        host: Interface to listen on; ``127.0.0.1`` keeps it on this machine.
        port: TCP port.
        auth: ``(user, password)`` logins; each user gets their own conversations. None: no login, user "default".
        max_upload_mb: Largest file accepted for upload.
        block: Wait until interrupted (then stop the server); False returns at once with the server running
            (stop it with ``.close()``).

    Returns:
        The running app.

    Raises:
        StoreError: Another process holds the home's index or memory: the web app must own the home while it
            runs (`ChatBackend.claim`), so it refuses to start rather than fail on the first question.
    """
    backend.claim()
    backend.warm_up()  # models load while the page opens, not on the first question
    app = build_app(backend, max_upload_mb=max_upload_mb)
    app.queue(default_concurrency_limit=1)  # the model and index work shares one queue (`serial` in build_app)
    app.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        auth_message="Sign in to Tessera" if auth else None,
        share=False,
        prevent_thread_lock=True,
        max_file_size=int(max_upload_mb * 1024 * 1024),
        ssr_mode=False,
        quiet=True,
        css=CSS,
        theme=gr.themes.Soft(),
    )
    if block:
        print(f"Tessera web chat on http://{host}:{port} (Ctrl+C stops it)")
        try:
            app.block_thread()
        finally:
            app.close()
    return app
