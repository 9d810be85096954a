#!/usr/bin/env python3
"""ProtoNets++: prototypical networks on a ResNet-12 backbone (Euclidean distance, not squared).

Flags keep the names of upstream ElementAI/am3 protonet++.py; see --help and am3/README.md.
    python am3/protonet++.py --data_dir=DATA --log_dir=LOG [--mode=train|eval|test] ...
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from am3.flags import main

if __name__ == "__main__":
    main("protonet++")
