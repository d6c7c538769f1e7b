"""GraphSAGE embeddings: features, encoder/decoder/loss, sampler, training and the refresh job."""

import sys
import warnings

# torch_geometric imports torch._dynamo, which imports triton when it is installed (it comes with the
# CUDA build of torch). Nothing here compiles GPU kernels, and triton's nanobind bindings print
# hundreds of "nanobind: leaked ..." lines at every interpreter exit: keep it out of the process.
sys.modules.setdefault("triton", None)
# Known-harmless warnings of the libraries, on every import of the GNN code:
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
