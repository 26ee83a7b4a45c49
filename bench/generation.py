"""Generation throughput: the ``generation`` stage of ``bench/throughput.py`` (same flags; output in runs/generation/)."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from throughput import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--stage", "generation", "--out", str(HERE.parent / "runs" / "generation"), *sys.argv[1:]]))
