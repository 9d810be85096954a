"""AM3's published numbers (Xing et al., NeurIPS 2019, arXiv 1902.07104): 5-way test accuracy (%) and 95% CI.

Table 1 is miniImageNet, Table 2 tieredImageNet; each row names its table and row. The ProtoNets++ and TADAM
rows are the paper's own runs of the visual-only bases (its "ours" rows), the baselines of its AM3 rows.
Only numbers read at a stored source are here, each cell's source string saying where:
- AM3-TADAM's values, all four cells (65.30 / 78.10, 69.08 / 82.58): the paper's entries on its paperswithcode
  page; the leaderboard below gives the same four.
- AM3-TADAM's 95% intervals: miniImageNet 0.49 / 0.36 as two listings give them beside 65.30 / 78.10 (the "AM3"
  rows of yaoyao-liu/few-shot-classification-leaderboard's miniimagenet.md, which names the paper as its source,
  and of Duan-JM/awesome-papers-fewshot's results table); tieredImageNet 0.47 / 0.31 as the same leaderboard's
  tieredimagenet.md gives them beside 69.08 / 82.58. Neither listing names the variant; the values are
  AM3-TADAM's, so the intervals are taken as its.
- AM3-ProtoNets++ on miniImageNet (65.21 / 75.20): the project's reference notes, and the "AM3" row of the
  comparison table in the IEPT paper (ICLR 2021), as stored in a public repository. That row puts AM3-TADAM's
  0.49 / 0.36 beside these values (rows mixed there, as the two listings above pair them with AM3-TADAM's), so
  AM3-ProtoNets++ gets no interval; its tieredImageNet 67.23 / 78.95 (0.34 / 0.22) in the same row, unnamed
  variant and no second source, is not quoted either.
The other cells (ProtoNets++, TADAM, AM3-ProtoNets++ on tieredImageNet) are None, printed as "-" with the table
and row to read them in: the paper's own tables were not readable at any stored source, and a number written
from memory could be wrong. The table numbers (1 mini, 2 tiered) are likewise not confirmed at a source.
"""
from common.reproduce import Paper

ARXIV = "arXiv 1902.07104"
# Where the quoted values were read (see the module docstring).
PWC = "as the paper's paperswithcode page lists it"
IEPT = "as the IEPT paper's comparison table lists it"
BOARD = "the 95% CI as yaoyao-liu/few-shot-classification-leaderboard lists it"


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
        "AM3_TADAM": _row("Table 1", "AM3-TADAM", 65.30, 0.49, PWC + ", " + BOARD),
    },
    ("mini", 5): {
        "protonet++": _row("Table 1", "ProtoNets++"),
        "AM3_protonet++": _row("Table 1", "AM3-ProtoNets++", 75.20, where=IEPT),
        "tadam": _row("Table 1", "TADAM"),
        "AM3_TADAM": _row("Table 1", "AM3-TADAM", 78.10, 0.36, PWC + ", " + BOARD),
    },
    ("tiered", 1): {
        "protonet++": _row("Table 2", "ProtoNets++"),
        "AM3_protonet++": _row("Table 2", "AM3-ProtoNets++"),
        "tadam": _row("Table 2", "TADAM"),
        "AM3_TADAM": _row("Table 2", "AM3-TADAM", 69.08, 0.47, PWC + ", " + BOARD),
    },
    ("tiered", 5): {
        "protonet++": _row("Table 2", "ProtoNets++"),
        "AM3_protonet++": _row("Table 2", "AM3-ProtoNets++"),
        "tadam": _row("Table 2", "TADAM"),
        "AM3_TADAM": _row("Table 2", "AM3-TADAM", 82.58, 0.31, PWC + ", " + BOARD),
    },
}
