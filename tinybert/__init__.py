"""tinybert: BERT multi-task fine-tuning on a hand-written autograd over NumPy/CuPy."""
from .tensor import Tensor, no_grad, is_grad_enabled
from . import backend, ops, functional, paths
from .nn import Module, Parameter
from .model import BertConfig, BertModel, EncoderOutput
