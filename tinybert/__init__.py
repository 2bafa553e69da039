"""tinybert: BERT multi-task fine-tuning on a hand-written autograd over NumPy/CuPy."""
from .tensor import Tensor, no_grad, is_grad_enabled
from . import backend, ops, functional, seam
from .nn import Module, Parameter
from .model import BertConfig, BertModel, EncoderOutput

if seam.fast_path_on():  # TINYBERT_FAST=0 leaves the fast kernels (threads, malloc setting) unloaded
    from . import fast
