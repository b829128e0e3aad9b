"""The comparison report: every number and claim read or computed from typed run records, with one stated rule.

`table` shapes runs into one row per variant, `rule` holds the recommendation rule, `sections` renders Markdown
(`accuracy` its drops, flips and drift) and `document` writes the file with its figures; `comparison` selects
the runs, logs the result and registers the pick.
"""

from facequant.report.comparison import Comparison, compare, drop_evidence, evidence, recommend, register_recommended
from facequant.report.rule import Rule

__all__ = ["Comparison", "Rule", "compare", "drop_evidence", "evidence", "recommend", "register_recommended"]
