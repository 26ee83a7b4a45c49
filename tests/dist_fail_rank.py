"""Launched by tests/test_dist.py under torchrun: rank 1 raises in its first step, rank 0 goes on
into the step's collectives. The job as a whole must end non-zero instead of hanging."""
import sys

from mrt_engine.config import TrainConfig
from mrt_engine.trainer import dist
from mrt_engine.trainer import Trainer


def main(path: str) -> None:
    trainer = Trainer(TrainConfig.from_yaml(path))
    if dist.rank() == 1:
        def fail(problems):
            raise RuntimeError("rank 1 fails on purpose")

        trainer.train_step = fail
    trainer.run()


if __name__ == "__main__":
    main(sys.argv[1])
