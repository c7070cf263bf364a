"""From the IR to torch, and the named models.

* :mod:`.build` — an IR graph -> ``torch.nn.Module``;
* :mod:`.zoo` — the sheets' named models (``baseline``, ``vgg16``, ...) and plugin models;
* :mod:`.resolve` — the one resolver: a model name, spec string, TOML/JSON file, IR graph or
  live module -> (IR graph, input shape), used by ``cnnlab.analyze`` and ``cnnlab analyze``.
"""
