"""cnnlab: analyze, verify and train convolutional networks.

``cnnlab.analyze(spec_or_module, input="1x28x28")`` returns an :class:`~cnnlab.analyze.Analysis`
(dataclasses) that prints as a table and renders as HTML in a notebook.
"""

# Binding the function after the submodule import keeps ``cnnlab.analyze`` the function even
# though ``cnnlab/analyze.py`` is a module of the same name (numpy-free, torch-free import).
from .analyze import Analysis, analyze

__version__ = "0.1.0"
__all__ = ["Analysis", "analyze", "__version__"]
