"""The intermediate representation of an architecture and everything that produces it.

* :mod:`.ops` — the op dataclasses, one per layer kind (``Conv``, ``Pool``, ``Linear``...);
* :mod:`.graph` — the IR: a typed layer graph (:class:`Graph`, :class:`Node`; re-exports the ops);
* :mod:`.layers` — a layer's type name and arguments -> one checked op (:func:`make_op`, limits);
* :mod:`.spec` — the spec language (``"conv5x5x32 relu maxpool2 fc10"``) -> IR and back;
* :mod:`.specfile` — TOML/JSON architecture files -> IR;
* :mod:`.shapes` — shape rules and the meaning of padding (one window geometry for all readers);
* :mod:`.fximport` — a live ``torch.nn.Module`` traced by torch.fx, or run on meta tensors
  (:mod:`.capture`), -> IR (leaf modules by :mod:`.fximport_ops`, tensor methods and
  functions by :mod:`.fximport_tensor`); :mod:`.layer_input` says, in one line, which layer a wrong
  ``--input`` does not fit;
* :mod:`.keras_import` (rules in :mod:`.keras_layers`) — a Keras model -> IR (keras extra);
* :mod:`.onnx_import` (rules in :mod:`.onnx_ops`) — an ONNX model -> IR (onnx extra).

The analyzer (:mod:`cnnlab.analysis`), the torch builder (:mod:`cnnlab.models`) and the NumPy
reference (:mod:`cnnlab.ref`) read the IR; nothing here imports them.
"""
