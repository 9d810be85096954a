"""Code shared by the four models: NPU/CPU session set-up, Ascend flags, step timing, errors."""
