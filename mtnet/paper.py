"""MT-net's published numbers (Lee & Choi, ICML 2018, arXiv 1801.05558), each naming its table and row.

Only numbers read at a source are here: the MT-net rows of Omniglot 1-shot (99.5, 96.2) and miniImageNet
(51.70), as the paper's entries on public benchmark listings give them. Every other cell is None, printed as "-"
with the table and row to read it in: a number written from memory could be wrong. Their 95% intervals
were not read at a source: left out.
"""
from common.reproduce import Paper

ARXIV = "arXiv 1801.05558"


def _row(table, row, value=None, ci=None):
    note = "as public benchmark listings of the paper give it" if value is not None else \
        "not read at the source here: see the paper"
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
    ("miniimagenet", 5, 1, "MT-net"): _row("Table 2", "MT-net, miniImageNet 5-way 1-shot", 51.70),
}


def classification(dataset, ways, shots, variant):
    key = (dataset, ways, shots, variant)
    return CLASSIFICATION.get(key) or _row("Table 2", "%s, %s %d-way %d-shot" % (variant, dataset, ways, shots))
