"""Instructions from three sources, one type, and the pairs built from them.

``ifeval`` (what lm-eval's registry knows) < ``curated`` (the catalog's phrasings) < ``instruction`` (the
``Instruction`` type) < ``lookup`` (names to instructions) < ``groups`` (instructions sharing one
vector) < ``pairs`` (base queries, splits, with/without pairs) < ``datasets`` (IFEval-format files).
"""

from workbench.instructions.datasets import (
    NO_TWIN,
    SAME_TWIN,
    IFEvalExample,
    file_pairs,
    ifeval_records,
    load_ifeval_jsonl,
    record_instructions,
    twin,
)
from workbench.instructions.groups import (
    DEFAULT_GROUP_BY,
    Group,
    as_group,
    check_group_by,
    parse_group_by,
    vector_groups,
)
from workbench.instructions.ifeval import (
    BUDGETS,
    DEFAULT_BUDGET,
    EITHER,
    IFEVAL_DEFAULTS,
    IFEVAL_IDS,
    MAX_BUDGET,
    PROHIBITION,
    REQUIREMENT,
    TRUNCATION,
    budget,
    describe,
    parse_spelling,
    spelling,
    truncation,
)
from workbench.instructions.instruction import PLACEHOLDERS, Instruction, generic, slug
from workbench.instructions.lookup import catalog, get_instruction
from workbench.instructions.pairs import (
    SPLITS,
    Pair,
    Query,
    data_hash,
    instantiate,
    keyword,
    make_pairs,
    queries,
    split_of,
)

__all__ = [
    "BUDGETS",
    "DEFAULT_BUDGET",
    "DEFAULT_GROUP_BY",
    "MAX_BUDGET",
    "EITHER",
    "IFEVAL_DEFAULTS",
    "IFEVAL_IDS",
    "PLACEHOLDERS",
    "PROHIBITION",
    "REQUIREMENT",
    "SPLITS",
    "TRUNCATION",
    "Group",
    "IFEvalExample",
    "Instruction",
    "Pair",
    "Query",
    "as_group",
    "budget",
    "catalog",
    "data_hash",
    "describe",
    "NO_TWIN",
    "SAME_TWIN",
    "file_pairs",
    "twin",
    "generic",
    "get_instruction",
    "ifeval_records",
    "instantiate",
    "keyword",
    "load_ifeval_jsonl",
    "make_pairs",
    "check_group_by",
    "parse_group_by",
    "parse_spelling",
    "queries",
    "record_instructions",
    "slug",
    "spelling",
    "split_of",
    "truncation",
    "vector_groups",
]
