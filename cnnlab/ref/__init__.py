"""NumPy reference implementations: every op has ``forward(x, ...) -> (out, cache)`` and
``backward(dout, cache) -> grads`` (CS231n style), a naive loop version (the oracle) and a
vectorized version tested against it, torch and scipy.

Modules: :mod:`.padding` (fill modes zero/reflect/symmetric/replicate/circular and their
adjoints), :mod:`.conv` (N-d convolution and cross-correlation), :mod:`.pool` (max/avg),
:mod:`.softmax` (softmax, log-softmax, cross-entropy), :mod:`.layers` (activations, linear,
batchnorm, dropout, joins) and :mod:`.network` (a whole :class:`cnnlab.ir.graph.Graph`).
"""

from .conv import (
    ConvCache,
    conv_backward,
    conv_backward_naive,
    conv_forward,
    conv_forward_naive,
    convolve,
    correlate,
)
from .layers import (
    act_backward,
    act_forward,
    batchnorm_backward,
    batchnorm_forward,
    linear_backward,
    linear_backward_naive,
    linear_forward,
    linear_forward_naive,
)
from .network import (
    NetCache,
    Params,
    init_params,
    loss_and_grads,
    network_backward,
    network_forward,
    params_from_torch,
)
from .padding import FILL_MODES, SIZE_MODES, fill_mode, pad, pad_backward
from .pool import (
    avg_pool,
    max_pool,
    pool_backward,
    pool_backward_naive,
    pool_forward,
    pool_forward_naive,
)
from .softmax import (
    cross_entropy_backward,
    cross_entropy_backward_naive,
    cross_entropy_forward,
    cross_entropy_forward_naive,
    log_softmax_backward,
    log_softmax_backward_naive,
    log_softmax_forward,
    log_softmax_forward_naive,
    softmax_backward,
    softmax_backward_naive,
    softmax_forward,
    softmax_forward_naive,
)

__all__ = [
    "FILL_MODES", "SIZE_MODES", "ConvCache", "NetCache", "Params",
    "act_backward", "act_forward", "avg_pool", "batchnorm_backward", "batchnorm_forward",
    "conv_backward", "conv_backward_naive", "conv_forward", "conv_forward_naive", "convolve",
    "correlate", "cross_entropy_backward", "cross_entropy_backward_naive",
    "cross_entropy_forward", "cross_entropy_forward_naive", "fill_mode", "init_params",
    "linear_backward", "linear_backward_naive", "linear_forward", "linear_forward_naive",
    "log_softmax_backward", "log_softmax_backward_naive", "log_softmax_forward",
    "log_softmax_forward_naive", "loss_and_grads", "max_pool", "network_backward",
    "network_forward", "pad", "pad_backward", "params_from_torch", "pool_backward",
    "pool_backward_naive", "pool_forward", "pool_forward_naive", "softmax_backward",
    "softmax_backward_naive", "softmax_forward", "softmax_forward_naive",
]
