"""The baselines that are not ours and need more than a function: the vLLM client (finds a
python with vLLM and drives the worker), the vLLM worker (run by that python: stdlib + vllm
only) and the HF exporter (the plain safetensors checkpoint vLLM loads). The plain torch and
transformers baselines live beside the stage that measures them (``bench/stages/``)."""
