"""The SWA callback alone, as the package `swa` (the project's training scripts and `common` stay out):

    pip install ./swa                                             # from a clone
    pip install "git+https://<host>/<repo>.git#subdirectory=swa"  # straight from the repository

It needs the Keras the program uses (tf.keras of TF 1.15 or 2.x, tf_keras, or Keras 3 on TensorFlow, JAX or
PyTorch: there TensorFlow is not needed), so none is pinned: `pip install "./swa[tensorflow]"` adds the newest
TensorFlow.
"""
from setuptools import setup
from setuptools.command.build_py import build_py

# The library's modules; the seed script, its training loop and the measuring tools import the project's common/.
LIBRARY = ("__init__", "_tf", "core", "eager", "eager_common", "graph", "keras", "portable", "tfkeras")


class LibraryOnly(build_py):
    def find_package_modules(self, package, package_dir):
        return [m for m in super().find_package_modules(package, package_dir) if m[1] in LIBRARY]


setup(
    name="swa-keras-callback",
    version="0.2.0",
    description="Stochastic weight averaging callback for Keras/tf.keras, with exact batch-norm statistics",
    packages=["swa"],
    package_dir={"swa": "."},
    cmdclass={"build_py": LibraryOnly},
    python_requires=">=3.7",
    install_requires=["numpy"],
    extras_require={"tensorflow": ["tensorflow"]},
)
