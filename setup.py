"""Metadata lives in setup.cfg; this shim lets `pip install -e .` work with the pip that ships for Python 3.7."""
from setuptools import setup

setup()
