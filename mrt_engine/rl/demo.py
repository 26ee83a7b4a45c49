"""Old home of the demo recipe, kept so that older imports of its configs keep working.

The recipe is ``mrt_engine.commands.demo`` (it sits on top of the trainer); its configs are the
shipped YAML files, ``mrt_engine.configs.load_config("demo")`` and ``load_config("sft_demo")``.
New code uses those; these names are loaded from the same files, never copied.
"""
from mrt_engine.configs import load_config

DEMO_TRAIN = load_config("demo")
DEMO_SFT = load_config("sft_demo")
DEMO_TEMPLATE = DEMO_TRAIN["algo"]["template"]
