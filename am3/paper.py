"""AM3's published numbers (Xing et al., NeurIPS 2019, arXiv 1902.07104): 5-way test accuracy (%) and 95% CI.

Table 1 is miniImageNet, Table 2 tieredImageNet; each row names its table and row. The ProtoNets++ and TADAM
rows are the paper's own runs of the visual-only bases (its "ours" rows), the baselines of its AM3 rows.
Checked at the source: the AM3 rows of Table 1 (issue 30 and the project's reference notes quote them); the other
numbers are transcriptions of the paper's tables, marked "transcribed, re-check" in every printed table until
someone re-reads them there.
"""
from common.reproduce import Paper

ARXIV = "arXiv 1902.07104"


def _row(table, row, value, ci, checked=False):
    """checked: read at the source in this project; otherwise a transcription, marked so in every table."""
    return Paper(value, ci, "%s, row %s (%s)%s" % (table, row, ARXIV, "" if checked else "; transcribed, re-check"))


# (dataset, shots) -> {variant: Paper}
ACCURACY = {
    ("mini", 1): {
        "protonet++": _row("Table 1", "ProtoNets++", 56.52, 0.45),
        "AM3_protonet++": _row("Table 1", "AM3-ProtoNets++", 65.21, 0.30, checked=True),
        "tadam": _row("Table 1", "TADAM", 58.56, 0.39),
        "AM3_TADAM": _row("Table 1", "AM3-TADAM", 65.30, 0.49, checked=True),
    },
    ("mini", 5): {
        "protonet++": _row("Table 1", "ProtoNets++", 74.28, 0.20),
        "AM3_protonet++": _row("Table 1", "AM3-ProtoNets++", 75.20, 0.27, checked=True),
        "tadam": _row("Table 1", "TADAM", 76.65, 0.38),
        "AM3_TADAM": _row("Table 1", "AM3-TADAM", 78.10, 0.36, checked=True),
    },
    ("tiered", 1): {
        "protonet++": _row("Table 2", "ProtoNets++", 58.47, 0.64),
        "AM3_protonet++": _row("Table 2", "AM3-ProtoNets++", 67.23, 0.34),
        "tadam": _row("Table 2", "TADAM", 62.13, 0.31),
        "AM3_TADAM": _row("Table 2", "AM3-TADAM", 69.08, 0.47),
    },
    ("tiered", 5): {
        "protonet++": _row("Table 2", "ProtoNets++", 78.41, 0.41),
        "AM3_protonet++": _row("Table 2", "AM3-ProtoNets++", 78.95, 0.22),
        "tadam": _row("Table 2", "TADAM", 81.92, 0.30),
        "AM3_TADAM": _row("Table 2", "AM3-TADAM", 82.58, 0.31),
    },
}
