"""`tessera eval run --engine ray`: a large question set answered by a pool of Ray actors.

The index is built (or found) first, by this process, as for a local run. Each actor then copies it (the
embedded shard has one owner at a time, so every actor gets its own; on a cluster each machine copies it
from the shared path the run's home is on), builds the same assistant and RAGAS evaluators from the same
settings, and answers the questions it is handed; rows come back as they finish and this process appends
them to ``answers.jsonl``, so an interrupted run resumes as a local one does. Each actor starts with a copy of
the run home's LLM cache (greedy replies replay) and keeps what it adds to itself: the shared file is not
written by several processes at once.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from assistant.config import Settings
from eval.datasets import Dataset, QuestionRecord, load_dataset
from ingestion.ray_engine import RayUnavailable
from retrievers.store import OWNER_FILE


def answer_with_ray(runner: Any, dataset: Dataset, todo: Sequence[QuestionRecord], judged_ids: set[str]) -> Iterator[dict[str, Any]]:
    """Yields the rows of ``todo`` (in the order they finish), answered by ``runner.config.workers`` actors.

    Raises:
        RayUnavailable: Ray is not installed (the message says how to install it).
    """
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise RayUnavailable("--engine ray needs Ray: pip install 'ray[data]==2.60.0' (scripts/setup.sh installs it)") from exc
    config = runner.config
    index_home = runner.index_settings(dataset).home
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=config.ray_address, num_cpus=None if config.ray_address else config.workers,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    scratch = config.out_dir / ".ray-actors"  # each actor's copy of the index, removed when the run ends
    try:
        actor = ray.remote(num_cpus=1)(Answerer)
        settings = runner.settings
        if config.ray_address is None:  # a local cluster: the actors share this machine's cores
            settings = settings.model_copy(update={"models": settings.models.model_copy(update={"threads": 1})})
        pool = ActorPool([
            actor.remote(type(runner), settings.model_dump_json(), replace(config, progress=False), str(index_home), str(scratch))
            for _ in range(config.workers)
        ])
        work = [(q.id, q.id in judged_ids) for q in todo]
        rows = pool.map_unordered(lambda a, item: a.answer.remote(*item), work)
        yield from tqdm(rows, total=len(work), desc="questions (ray)", unit="q", disable=not config.progress)
    finally:
        if started_here:
            ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)


class Answerer:
    """A Ray actor: one copy of the index and one assistant, answering the questions it is handed."""

    def __init__(self, runner_class: Any, settings_json: str, config: Any, index_home: str, scratch: str) -> None:
        settings = Settings.model_validate_json(settings_json)
        Path(scratch).mkdir(parents=True, exist_ok=True)
        home = Path(tempfile.mkdtemp(prefix="actor-", dir=scratch))
        index = Path(index_home)
        shutil.copytree(index, home / "eval-index" / index.name, ignore=shutil.ignore_patterns("*.lock", OWNER_FILE))
        cache = settings.home / "eval-llm-cache.sqlite"
        if cache.exists():
            shutil.copy(cache, home / cache.name)
        self.home = home
        self.runner = runner_class(settings.model_copy(update={"home": home}), config)  # eval.runner.EvalRunner
        dataset = load_dataset(config.data_dir)
        self.questions = {q.id: q for q in dataset.questions}
        self.corpus = {r.id: r.text for r in dataset.corpus}
        self._pipeline = self.runner.qa_pipeline(dataset)
        self.qa = self._pipeline.__enter__()
        self.evaluators = (None, None) if config.retrieval_only else self.runner.ragas_evaluators()

    def answer(self, question_id: str, judged: bool) -> dict[str, Any]:
        return self.runner.row(self.qa, self.questions[question_id], self.evaluators, judged, self.corpus)
