"""Scripts beside the benchmark, run as modules (``python -m bench.tools.<name>``): the floors of
a model checked on the ``meta`` device before any run, the GPU tile sweep of the attention
kernels, and a profile of where each stage's time goes."""
