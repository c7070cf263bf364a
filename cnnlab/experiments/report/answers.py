"""Answers in words: one paragraph per sub-question of the sheets' practical parts.

One writer per recipe (:data:`WRITERS`), each reading the recipe's findings (its groups of
runs, parameter steps) and writing, per sub-question, the claim the numbers support with its
interval and seeds, and the mechanism in one sentence (:mod:`cnnlab.experiments.report.wording`
decides the words from the intervals). A group that did not run (a thinned ``--quick``
sweep, a skipped variant) leaves its sub-question out rather than guessing.
"""

from __future__ import annotations

from typing import Any

from cnnlab.experiments.report import answers_huji, answers_more
from cnnlab.experiments.report.stats import Findings
from cnnlab.experiments.report.wording import Writer

#: recipe name -> its answer writer (:mod:`.answers_huji`, :mod:`.answers_more`)
WRITERS: dict[str, Writer] = {**answers_huji.WRITERS, **answers_more.WRITERS}


def answer(doc: dict[str, Any], f: Findings) -> list[tuple[str, str]]:
    """The answer paragraphs of one experiment document: (sub-question, paragraph)."""
    fn = WRITERS.get(str(doc.get("recipe", {}).get("name", "")))
    return [(q, text) for q, text in (fn(doc, f) if fn else []) if text]
