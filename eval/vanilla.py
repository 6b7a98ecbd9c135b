"""The vanilla llama-index baseline Tessera is evaluated against.

What a user would build in ten lines: ``VectorStoreIndex`` (in-memory ``SimpleVectorStore``) over
``SentenceSplitter`` chunks with its defaults (1024 tokens, 200 overlap, tiktoken ``cl100k_base`` — which
llama-index ships under ``llama_index/core/_static``, so it works offline), ``similarity_top_k=2`` and the
default ``compact`` synthesizer with the default text QA prompt, from ``index.as_query_engine()``. Only
the models are Tessera's: the same embedder and generator, wrapped in the adapters below.

llama-index's global ``Settings`` is never written: the embedder, LLM and splitter are passed explicitly,
so nothing can fall back to OpenAI. The pipeline's public methods speak Tessera's types only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from llama_index.core import Document as LlamaDocument
from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle
from pydantic import Field, PrivateAttr

from assistant.answering import is_abstention
from assistant.config import Settings
from assistant.models.base import Embedder, Generator, Message
from assistant.types import Answer, Document, Hit, Trace


class LlamaIndexEmbedding(BaseEmbedding):
    """A Tessera `Embedder` as a llama-index embedding model (also usable by ragas' wrapper).

    Example:
        >>> LlamaIndexEmbedding(FakeEmbedder()).get_query_embedding("hi")  # doctest: +SKIP
    """

    _embedder: Embedder = PrivateAttr()

    def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
        super().__init__(model_name=embedder.name, **kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "TesseraEmbedding"

    def _embed(self, texts: Sequence[str]) -> list[Embedding]:
        # Documents: every sync and async text entry point below delegates here (queries use embed_queries).
        return self._embedder.embed(list(texts)).tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embedder.embed_queries([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(texts)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embedding(text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._get_text_embeddings(texts)


class LlamaIndexLLM(CustomLLM):
    """A Tessera `Generator` as a llama-index completion LLM.

    The prompt goes to the generator as one user message, so instruct models apply their chat template.
    ``CustomLLM`` already routes ``chat``/``achat``/``acomplete`` through `complete`/`stream_complete`.

    Args:
        generator: The wrapped generator.
        max_new_tokens: Most tokens per completion (reported to llama-index as ``num_output``).
        temperature: Sampling temperature; 0 is greedy.
        context_window: Tokens the model accepts; llama-index packs retrieved chunks to fit it.
    """

    context_window: int = Field(8192, gt=0)
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    _generator: Generator = PrivateAttr()

    def __init__(
        self,
        generator: Generator,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        context_window: int = 8192,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            max_new_tokens=max_new_tokens, temperature=temperature, context_window=context_window, **kwargs
        )
        self._generator = generator

    @classmethod
    def class_name(cls) -> str:
        return "TesseraLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """Completion model (not chat), so llama-index picks its plain-text default prompts."""
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_new_tokens,
            model_name=self._generator.name,
            is_chat_model=False,
        )

    def _pieces(self, prompt: str, formatted: bool) -> Iterator[str]:
        # The one implementation behind complete and stream_complete.
        if not formatted:
            prompt = self.completion_to_prompt(prompt)
        return self._generator.stream(
            [Message("user", prompt)], max_new_tokens=self.max_new_tokens, temperature=self.temperature
        )

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="".join(self._pieces(prompt, formatted)))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            text = ""
            for piece in self._pieces(prompt, formatted):
                text += piece
                yield CompletionResponse(text=text, delta=piece)

        return gen()


class VanillaPipeline:
    """llama-index defaults end to end, with Tessera's models: the evaluation's baseline.

    Args:
        settings: Generation settings (``models.max_new_tokens``, ``models.temperature``) are read here.
        embedder: The embedder Tessera uses.
        generator: The generator Tessera uses.
        context_window: Passed to `LlamaIndexLLM`.
    """

    def __init__(
        self, settings: Settings, embedder: Embedder, generator: Generator, *, context_window: int = 8192
    ) -> None:
        self.settings = settings
        self.embed_model = LlamaIndexEmbedding(embedder)
        self.llm = LlamaIndexLLM(
            generator,
            max_new_tokens=settings.models.max_new_tokens,
            temperature=settings.models.temperature,
            context_window=context_window,
        )
        self._engine: RetrieverQueryEngine | None = None
        self._streaming: Any = None
        self._index: VectorStoreIndex | None = None

    def index(self, documents: Sequence[Document]) -> None:
        """Builds the in-memory vector index, replacing any previous one.

        Args:
            documents: Tessera documents; ``source`` and ``title`` become llama-index metadata, which
                llama-index (by default) also puts into the embedded and prompted text.
        """
        docs = [
            LlamaDocument(text=d.text, id_=d.id, metadata={"source": d.source, "title": d.title})
            for d in documents
        ]
        # SentenceSplitter() is exactly llama-index's default transformation; naming it here keeps the
        # global Settings untouched.
        index = VectorStoreIndex.from_documents(
            docs, embed_model=self.embed_model, transformations=[SentenceSplitter()]
        )
        self._index = index
        self._engine = index.as_query_engine(llm=self.llm)
        self._streaming = None

    @property
    def engine(self) -> RetrieverQueryEngine:
        """The query engine `index` built."""
        if self._engine is None:
            raise RuntimeError("VanillaPipeline has no index yet: call index(documents) before ask or search")
        return self._engine

    def search(self, question: str, trace: Trace | None = None, *, top_k: int | None = None) -> list[Hit]:
        """Retrieval only: the top chunks for ``question``, best first.

        Args:
            question: The query.
            trace: Where to record the retrieval time (stage ``retrieve``).
            top_k: How many chunks; the query engine's default (2) when None. Evaluation asks for more
                to measure recall@k beyond what the generator sees.
        """
        trace = trace if trace is not None else Trace()
        with trace.stage("retrieve", top_k=top_k):
            if top_k is None:
                return [_to_hit(n) for n in self.engine.retrieve(QueryBundle(question))]
            assert self._index is not None  # engine exists, so the index does
            return [_to_hit(n) for n in self._index.as_retriever(similarity_top_k=top_k).retrieve(question)]

    def ask(self, question: str) -> Answer:
        """Answers like ``query_engine.query(question)``, timing retrieval and generation apart.

        ``RetrieverQueryEngine._query`` is ``retrieve`` then ``synthesize``; calling the two here gives
        the same response while the trace records each stage.
        """
        trace = Trace()
        bundle = QueryBundle(question)
        with trace.stage("retrieve", top_k=self.engine.retriever.similarity_top_k) as info:
            nodes = self.engine.retrieve(bundle)
            info["hits"] = len(nodes)
        with trace.stage("generate", generator=self.llm.metadata.model_name) as info:
            response = self.engine.synthesize(bundle, nodes)
            info["chars"] = len(str(response.response or ""))
        text = str(response.response or "")
        # With no chunks llama-index answers "Empty Response" without asking the LLM: nothing was found.
        abstained = not response.source_nodes or is_abstention(text)
        hits = tuple(_to_hit(n) for n in response.source_nodes)
        return Answer(text=text, citations=(), contexts=hits, abstained=abstained, trace=trace)


    def stream(self, question: str) -> Iterator[str]:
        """Yields the answer's text pieces as generated, like ``as_query_engine(streaming=True)``."""
        assert self._index is not None, "call index(documents) first"
        if self._streaming is None:
            self._streaming = self._index.as_query_engine(llm=self.llm, streaming=True)
        yield from self._streaming.query(question).response_gen


def _to_hit(node: NodeWithScore) -> Hit:
    meta = node.node.metadata
    score = float(node.score) if node.score is not None else 0.0
    return Hit(
        unit_id=node.node.node_id,
        text=node.node.get_content(),
        score=score,
        source=str(meta.get("source", "")),
        passage_id=node.node.node_id,
        doc_id=node.node.ref_doc_id or "",
        title=str(meta.get("title", "")),
        dense_score=score,
    )
