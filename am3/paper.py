"""AM3's published numbers (Xing et al., NeurIPS 2019, arXiv 1902.07104): 5-way test accuracy (%) and 95% CI.

Table 1 is miniImageNet, Table 2 tieredImageNet; each row names its table and row. The ProtoNets++ and TADAM
rows are the paper's own runs of the visual-only bases (its "ours" rows), the baselines of its AM3 rows.
Only numbers read at a source are here: the AM3 rows of Table 1 (the project's reference notes quote them) and the
AM3-TADAM rows of Table 2 (the paper's entries on public benchmark listings). The other cells are None, printed as
"-" with the table and row to read them in: a number written from memory could be wrong, and a table here shows
only what was published or measured. The 95% intervals were not read at a source either: left out.
"""
from common.reproduce import Paper

ARXIV = "arXiv 1902.07104"


def _row(table, row, value=None, ci=None):
    """A cell of the paper's table; value None: not read at the source here, so not quoted."""
    note = "" if value is not None else "; not read at the source here: see the paper"
    return Paper(value, ci, "%s, row %s (%s)%s" % (table, row, ARXIV, note))


# (dataset, shots) -> {variant: Paper}
ACCURACY = {
    ("mini", 1): {
        "protonet++": _row("Table 1", "ProtoNets++"),
        "AM3_protonet++": _row("Table 1", "AM3-ProtoNets++", 65.21),
        "tadam": _row("Table 1", "TADAM"),
        "AM3_TADAM": _row("Table 1", "AM3-TADAM", 65.30),
    },
    ("mini", 5): {
        "protonet++": _row("Table 1", "ProtoNets++"),
        "AM3_protonet++": _row("Table 1", "AM3-ProtoNets++", 75.20),
        "tadam": _row("Table 1", "TADAM"),
        "AM3_TADAM": _row("Table 1", "AM3-TADAM", 78.10),
    },
    ("tiered", 1): {
        "protonet++": _row("Table 2", "ProtoNets++"),
        "AM3_protonet++": _row("Table 2", "AM3-ProtoNets++"),
        "tadam": _row("Table 2", "TADAM"),
        "AM3_TADAM": _row("Table 2", "AM3-TADAM", 69.08),
    },
    ("tiered", 5): {
        "protonet++": _row("Table 2", "ProtoNets++"),
        "AM3_protonet++": _row("Table 2", "AM3-ProtoNets++"),
        "tadam": _row("Table 2", "TADAM"),
        "AM3_TADAM": _row("Table 2", "AM3-TADAM", 82.58),
    },
}
