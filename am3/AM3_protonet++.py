#!/usr/bin/env python3
"""AM3-ProtoNets++: prototypes mixed adaptively with transformed class word embeddings.

Flags keep the names of upstream ElementAI/am3 AM3_protonet++.py; see --help and am3/README.md.
    python am3/AM3_protonet++.py --data_dir=DATA --log_dir=LOG [--mode=train|eval|test] ...
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from am3.flags import main

if __name__ == "__main__":
    main("AM3_protonet++")
