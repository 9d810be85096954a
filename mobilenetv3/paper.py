"""MobileNetV3's published ImageNet top-1 accuracy (%): the paper's (Howard et al., ICCV 2019, arXiv 1905.02244)
and keras.applications' for the weight files it ships (the table in the docstring of
keras/src/applications/mobilenet_v3.py, TF 2.15's keras; no top-5 is published there). The paper reports
top-1 only. Checked at the source: keras's numbers (read in the installed keras); the paper's 75.2 / 67.4
match issue 30 and the project's reference notes.
"""
from common.reproduce import Paper

TOP1 = {
    "large": Paper(75.2, None, "Table 3, row MobileNetV3-Large 1.0 (arXiv 1905.02244)"),
    "small": Paper(67.4, None, "Table 3, row MobileNetV3-Small 1.0 (arXiv 1905.02244)"),
}
KERAS_TOP1 = {
    "large": Paper(75.6, None, "keras.applications docstring table, row mobilenet_v3_large_1.0_224"),
    "small": Paper(68.1, None, "keras.applications docstring table, row mobilenet_v3_small_1.0_224"),
}
