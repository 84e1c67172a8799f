"""Chapter 1's data: TRL's formats, their validators, the source formats and their conversion,
and the strict loaders of the shipped datasets.

The learner's names are re-exported here (``from posttrain_utils import data``), so a notebook
reads e.g. ``data.load_records``. Modules:

    fields, jsonl     shared field checks; reading JSON Lines strictly (file, line and field in every error)
    formats           TRL's formats and `validate_record`; validate: `validate_file` and
                      ``python -m posttrain_utils.data FILE``
    source_formats    data as it is found (Alpaca, ShareGPT, rankings, ...); convert: into TRL's formats
    loading           `load_records` and `load_dataset` for the files in ``data/``
    splits            the development and test halves of the held-out evaluation data
"""

from __future__ import annotations

from .formats import validate_records
from .jsonl import DataFormatError, iter_jsonl, read_jsonl
from .loading import FILE_FORMATS, load_dataset, load_records
from .splits import DEV, TEST, selection_records, test_records
from .validate import FileReport, validate_file
from ..runtime.paths import DATA_DIR

__all__ = ["DATA_DIR", "DEV", "DataFormatError", "TEST", "selection_records", "test_records", "FILE_FORMATS", "FileReport", "iter_jsonl", "load_dataset",
           "load_records", "read_jsonl", "validate_file", "validate_records"]
