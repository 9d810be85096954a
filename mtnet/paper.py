"""MT-net's published numbers (Lee & Choi, ICML 2018, arXiv 1801.05558), each naming its table and row.

Only numbers read at a stored source are here, and a cell's source string says where:
- MT-net's Omniglot 5- and 20-way 1-shot (99.5, 96.2) and miniImageNet 5-way 1-shot (51.70) values, as public
  benchmark listings of the paper give them (sotaverified.org's page of the paper lists all three).
- The 95% interval of that miniImageNet cell, 1.84, as two listings give it beside 51.70 in their miniImageNet
  5-way 1-shot column: the MT-net entry of cainiaomyf/FSL-Insight's Optimization.md, and a public summary of the
  CAVIA paper's miniImageNet table, which quotes MT-net.
Every other cell is None, printed as "-" with the table and row to read it in: the paper's own tables (the
sinusoid MSEs, the T-net and MAML rows, the other intervals) were not readable at any stored source, and a number
written from memory could be wrong. For the same reason the table numbers below (sinusoid Table 1, classification
Table 2) and which sine-frequency range the paper's sinusoid table used are not confirmed at a source; upstream's
data generator (yoonholee/MT-net) draws the frequency from [0.8, 1.2], which is what the reproduction uses.
"""
from common.reproduce import Paper

ARXIV = "arXiv 1801.05558"
LISTED = "as public benchmark listings of the paper give it"
# The miniImageNet interval's two stored sources (see the module docstring).
MINI_CI = "the 95% CI as cainiaomyf/FSL-Insight Optimization.md and a CAVIA-paper summary list it"


def _row(table, row, value=None, ci=None, where=LISTED):
    """A cell of the paper's table; value None: not read at a source here, so not quoted."""
    note = where if value is not None else "not read at the source here: see the paper"
    return Paper(value, ci, "%s, row %s (%s); %s" % (table, row, ARXIV, note))


# Sinusoid regression, test MSE (Table 1): K = 5, 10, 20 support points.
SINUSOID = {(variant, k): _row("Table 1", "%s %d-shot" % (variant, k))
            for variant in ("MAML", "T-net", "MT-net") for k in (5, 10, 20)}

# Few-shot classification accuracy (%) (Table 2): Omniglot and miniImageNet.
CLASSIFICATION = {
    ("omniglot", 5, 1, "MAML"): _row("Table 2", "MAML, Omniglot 5-way 1-shot"),
    ("omniglot", 5, 1, "MT-net"): _row("Table 2", "MT-net, Omniglot 5-way 1-shot", 99.5),
    ("omniglot", 20, 1, "MAML"): _row("Table 2", "MAML, Omniglot 20-way 1-shot"),
    ("omniglot", 20, 1, "MT-net"): _row("Table 2", "MT-net, Omniglot 20-way 1-shot", 96.2),
    ("omniglot", 5, 5, "MAML"): _row("Table 2", "MAML, Omniglot 5-way 5-shot"),
    ("omniglot", 20, 5, "MAML"): _row("Table 2", "MAML, Omniglot 20-way 5-shot"),
    ("miniimagenet", 5, 1, "MAML"): _row("Table 2", "MAML, miniImageNet 5-way 1-shot"),
    ("miniimagenet", 5, 1, "T-net"): _row("Table 2", "T-net, miniImageNet 5-way 1-shot"),
    ("miniimagenet", 5, 1, "MT-net"): _row("Table 2", "MT-net, miniImageNet 5-way 1-shot", 51.70, 1.84,
                                           LISTED + ", " + MINI_CI),
}


def classification(dataset, ways, shots, variant):
    key = (dataset, ways, shots, variant)
    return CLASSIFICATION.get(key) or _row("Table 2", "%s, %s %d-way %d-shot" % (variant, dataset, ways, shots))
