"""Generation throughput: the ``generation`` stage of ``bench/throughput.py`` (same flags; output in runs/generation/)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--stage", "generation", "--out", "runs/generation", *sys.argv[1:]]))
