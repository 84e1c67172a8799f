"""``python -m posttrain_utils.evaluation.report_card STAGE ...``: see `cli.main`."""

from .cli import main

main()
