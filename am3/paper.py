"""AM3's published numbers (Xing et al., NeurIPS 2019, arXiv 1902.07104): 5-way test accuracy (%) and 95% CI.

Table 1 is miniImageNet, Table 2 tieredImageNet; each row names its table and row. The ProtoNets++ and TADAM
rows are the paper's own runs of the visual-only bases (its "ours" rows), the baselines of its AM3 rows.
Only numbers read at a source are here:
- AM3-TADAM, all four cells (65.30 / 78.10, 69.08 / 82.58): the paper's entries on its paperswithcode page.
- AM3-ProtoNets++ on miniImageNet (65.21 / 75.20): the project's reference notes, and the "AM3" row of the
  comparison table in the IEPT paper (ICLR 2021), as stored in a public repository.
The other cells are None, printed as "-" with the table and row to read them in: the paper's own tables were not
readable at any stored source, and a number written from memory could be wrong. The table numbers (1 mini, 2
tiered) are likewise not confirmed at a source. The 95% intervals stay out because the two stored listings
that give AM3 intervals disagree on whose they are: one (Duan-JM/awesome-papers-fewshot's results table) puts
0.49 / 0.36 beside AM3-TADAM's 65.30 / 78.10, the other (IEPT's table) puts the same 0.49 / 0.36 beside
AM3-ProtoNets++'s 65.21 / 75.20; one of them mixed rows. IEPT's "AM3" row also gives tieredImageNet 67.23 / 78.95
(0.34 / 0.22) without naming the variant, and no second source has them: not quoted either.
"""
from common.reproduce import Paper

ARXIV = "arXiv 1902.07104"
# Where the quoted values were read (see the module docstring).
PWC = "as the paper's paperswithcode page lists it"
IEPT = "as the IEPT paper's comparison table lists it"


def _row(table, row, value=None, ci=None, where=""):
    """A cell of the paper's table; value None: not read at the source here, so not quoted."""
    note = "; " + where if value is not None else "; not read at the source here: see the paper"
    return Paper(value, ci, "%s, row %s (%s)%s" % (table, row, ARXIV, note))


# (dataset, shots) -> {variant: Paper}
ACCURACY = {
    ("mini", 1): {
        "protonet++": _row("Table 1", "ProtoNets++"),
        "AM3_protonet++": _row("Table 1", "AM3-ProtoNets++", 65.21, where=IEPT),
        "tadam": _row("Table 1", "TADAM"),
        "AM3_TADAM": _row("Table 1", "AM3-TADAM", 65.30, where=PWC),
    },
    ("mini", 5): {
        "protonet++": _row("Table 1", "ProtoNets++"),
        "AM3_protonet++": _row("Table 1", "AM3-ProtoNets++", 75.20, where=IEPT),
        "tadam": _row("Table 1", "TADAM"),
        "AM3_TADAM": _row("Table 1", "AM3-TADAM", 78.10, where=PWC),
    },
    ("tiered", 1): {
        "protonet++": _row("Table 2", "ProtoNets++"),
        "AM3_protonet++": _row("Table 2", "AM3-ProtoNets++"),
        "tadam": _row("Table 2", "TADAM"),
        "AM3_TADAM": _row("Table 2", "AM3-TADAM", 69.08, where=PWC),
    },
    ("tiered", 5): {
        "protonet++": _row("Table 2", "ProtoNets++"),
        "AM3_protonet++": _row("Table 2", "AM3-ProtoNets++"),
        "tadam": _row("Table 2", "TADAM"),
        "AM3_TADAM": _row("Table 2", "AM3-TADAM", 82.58, where=PWC),
    },
}
