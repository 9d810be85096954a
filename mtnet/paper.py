"""MT-net's published numbers (Lee & Choi, ICML 2018, arXiv 1801.05558), each naming its table and row.

Every number here is a transcription of the paper's tables, marked "transcribed, re-check" in each printed
table; the MT-net rows of Omniglot 1-shot (99.5, 96.2) and miniImageNet (51.70) agree with the paper's entries
on public benchmark listings. The MAML rows of the paper's classification table quote the MAML paper.
Cells the paper leaves empty, or that were not transcribed, are None: the table prints "-" there.
"""
from common.reproduce import Paper

ARXIV = "arXiv 1801.05558"


def _row(table, row, value=None, ci=None):
    note = "transcribed, re-check" if value is not None else "not transcribed: read it there"
    return Paper(value, ci, "%s, row %s (%s); %s" % (table, row, ARXIV, note))


# Sinusoid regression, test MSE (Table 1): K = 5, 10, 20 support points.
SINUSOID = {(variant, k): _row("Table 1", "%s %d-shot" % (variant, k))
            for variant in ("MAML", "T-net", "MT-net") for k in (5, 10, 20)}

# Few-shot classification accuracy (%) (Table 2): Omniglot and miniImageNet.
CLASSIFICATION = {
    ("omniglot", 5, 1, "MAML"): _row("Table 2", "MAML, Omniglot 5-way 1-shot", 98.7, 0.4),
    ("omniglot", 5, 1, "MT-net"): _row("Table 2", "MT-net, Omniglot 5-way 1-shot", 99.5, 0.3),
    ("omniglot", 20, 1, "MAML"): _row("Table 2", "MAML, Omniglot 20-way 1-shot", 95.8, 0.3),
    ("omniglot", 20, 1, "MT-net"): _row("Table 2", "MT-net, Omniglot 20-way 1-shot", 96.2, 0.4),
    ("omniglot", 5, 5, "MAML"): _row("Table 2", "MAML, Omniglot 5-way 5-shot", 99.9, 0.1),
    ("omniglot", 20, 5, "MAML"): _row("Table 2", "MAML, Omniglot 20-way 5-shot", 98.9, 0.2),
    ("miniimagenet", 5, 1, "MAML"): _row("Table 2", "MAML, miniImageNet 5-way 1-shot", 48.70, 1.84),
    ("miniimagenet", 5, 1, "T-net"): _row("Table 2", "T-net, miniImageNet 5-way 1-shot", 50.86, 1.82),
    ("miniimagenet", 5, 1, "MT-net"): _row("Table 2", "MT-net, miniImageNet 5-way 1-shot", 51.70, 1.84),
}


def classification(dataset, ways, shots, variant):
    key = (dataset, ways, shots, variant)
    return CLASSIFICATION.get(key) or _row("Table 2", "%s, %s %d-way %d-shot" % (variant, dataset, ways, shots))
