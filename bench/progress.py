"""Progress estimation throughput: the ``score`` and ``sample`` stages of ``bench/throughput.py``
(same flags; output in runs/progress/)."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from throughput import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--stage", "score,sample", "--out", str(HERE.parent / "runs" / "progress"), *sys.argv[1:]]))
