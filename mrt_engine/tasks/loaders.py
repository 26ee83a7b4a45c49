"""Load problems from JSONL, Parquet, or a Hugging Face `datasets` directory
(`Dataset.save_to_disk`), and save them as JSONL. Local files only: no hub downloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from mrt_engine.errors import MRTUserError, unknown_fields

from .base import Problem

SAVED_FIELDS = ("id", "task", "meta")  # what save_problems writes besides problem and answer


def _jsonable(value: Any) -> Any:
    """Row values kept in `meta` must survive json.dumps (numpy scalars, bytes...)."""
    try:
        json.dumps(value)
        return value
    except TypeError:
        if hasattr(value, "item"):
            return value.item()
        if hasattr(value, "tolist"):
            return value.tolist()
        return str(value)


def _read_text(path: Path) -> str:
    """The file as text: gunzipped for ``.gz``, UTF-8, with errors that name the file and line."""
    import gzip

    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
            raise MRTUserError(f"{path}: not a readable gzip file ({e}); decompress it or drop the .gz") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise MRTUserError(f"{path}:{line}: not UTF-8 text (byte {raw[e.start]:#04x}); re-encode the file as "
                           "UTF-8") from None


def _parse(text: str, where: str, what: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise MRTUserError(f"{where}: not valid JSON ({e.msg}){what}") from None
    except (ValueError, RecursionError) as e:  # an integer past Python's digit limit; nesting too deep
        reason = ("nested too deeply" if isinstance(e, RecursionError)
                  else "a number with more digits than Python parses; write it as a string")
        raise MRTUserError(f"{where}: JSON that cannot be read ({reason})") from None


def _iter_json_lines(path: Path) -> Iterator[tuple[str, dict]]:
    """JSONL; a `.json` file holding one array of objects is read as a whole."""
    text = _read_text(path)
    if path.name.endswith((".json", ".json.gz")) and text.lstrip().startswith("["):
        rows = _parse(text, str(path), "")
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise MRTUserError(f"{path} item {i}: expected a JSON object, got {type(row).__name__}")
            yield f"{path} item {i}", row
        return
    # Split on "\n" only: str.splitlines also breaks at U+2028 / U+0085, which JSON strings may hold raw.
    for line_no, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        row = _parse(line, where, "; one JSON object per line")
        if not isinstance(row, dict):
            raise MRTUserError(f"{where}: expected a JSON object, got {type(row).__name__}")
        yield where, row


def _iter_table(rows: Iterable[dict], path: Path) -> Iterator[tuple[str, dict]]:
    for i, row in enumerate(rows):
        yield f"{path} row {i}", row


def _open_rows(path: Path, split: str | None) -> tuple[Iterator[tuple[str, dict]], list[str] | None]:
    """(rows with a location for errors, column names when the format has a schema)."""
    if path.is_dir():
        if not any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            raise MRTUserError(
                f"{path} is a directory but not a datasets `save_to_disk` folder "
                "(no dataset_info.json / state.json / dataset_dict.json)"
            )
        from datasets import DatasetDict, load_from_disk

        ds = load_from_disk(str(path))
        if isinstance(ds, DatasetDict):
            if split is None:
                if len(ds) != 1:
                    raise MRTUserError(f"{path} holds splits {sorted(ds)}; pass split=... to pick one")
                split = next(iter(ds))
            if split not in ds:
                raise MRTUserError(f"{path} has no split {split!r}; splits present: {sorted(ds)}")
            ds = ds[split]
        return _iter_table(iter(ds), path), list(ds.column_names)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".jsonl", ".json", ".jsonl.gz", ".json.gz"):
        return _iter_json_lines(path), None
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return _iter_table(table.to_pylist(), path), list(table.column_names)
    raise MRTUserError(
        f"{path}: unknown format {suffix!r}; use .jsonl(.gz), .json (an array or JSONL), "
        ".parquet, or a datasets save_to_disk folder"
    )


def _missing(field: str, kind: str, fields: Iterable[str], where: str) -> MRTUserError:
    return MRTUserError(
        f"{where}: no field {field!r} (the {kind} field); fields present: {sorted(fields)}. "
        f"Pass {kind}_field=... to name the right one."
    )


def load_problems(
    path: str | Path,
    *,
    problem_field: str = "problem",
    answer_field: str = "answer",
    id_field: str | None = None,
    limit: int | None = None,
    task: str | None = None,
    split: str | None = None,
    allow_extra: bool = False,
) -> list[Problem]:
    """Problems from a JSONL file (`.jsonl`, `.jsonl.gz`, or `.json` holding JSONL or one
    array of objects), a Parquet file, or a datasets `save_to_disk` folder.

    Answers that are numbers are turned into text (`42` -> "42"). A column other than the
    problem, answer and id fields and `id`/`task`/`meta` (what `save_problems` writes) is an
    error naming it, so a misspelled field is never silently ignored; with
    `allow_extra=True` such columns go into `Problem.meta`. `task` defaults to the file or folder name; ids default to
    `<task>-<row index>`. A missing field raises MRTUserError (a ValueError) naming it and listing the
    fields present. Rows written by `save_problems` (with `task` and a dict `meta`) come
    back as they were when `task` is not given, so `solution_trace` works on them.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data set at {path}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise MRTUserError(f"limit must be None or a non-negative int, got {limit!r}")
    task_given = task is not None
    task = task or (path.name if path.is_dir() else path.name.split(".")[0])
    rows, columns = _open_rows(path, split)
    known = {problem_field, answer_field, *SAVED_FIELDS} | ({id_field} if id_field else set())
    fix = "Rename it, pass problem_field=/answer_field=/id_field=, or allow_extra=True to keep it in Problem.meta"
    if columns is not None:  # fail before reading rows when the schema already says so
        for field, kind in ((problem_field, "problem"), (answer_field, "answer"), (id_field, "id")):
            if field is not None and field not in columns:
                raise _missing(field, kind, columns, str(path))
        if not allow_extra and set(columns) - known:
            raise unknown_fields(columns, known, where=str(path), fix=fix)
    problems: list[Problem] = []
    for i, (where, row) in enumerate(rows):
        if limit is not None and len(problems) >= limit:
            break
        for field, kind in ((problem_field, "problem"), (answer_field, "answer"), (id_field, "id")):
            if field is not None and field not in row:
                raise _missing(field, kind, row.keys(), where)
        if not allow_extra and set(row) - known:
            raise unknown_fields(row, known, where=where, fix=fix)
        text, answer = row[problem_field], row[answer_field]
        if not isinstance(text, str):
            raise MRTUserError(f"{where}: field {problem_field!r} must be text, got {type(text).__name__}")
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
            raise MRTUserError(
                f"{where}: field {answer_field!r} must be text or a number, got {type(answer).__name__}"
            )
        if not str(answer).strip():
            raise MRTUserError(
                f"{where}: field {answer_field!r} is empty; every problem needs a reference answer"
            )
        pid = str(row[id_field]) if id_field is not None else f"{task}-{i}"
        used = {problem_field, answer_field, id_field}
        meta = {k: _jsonable(v) for k, v in row.items() if k not in used}
        row_task = task
        if not task_given and isinstance(row.get("task"), str) and isinstance(row.get("meta"), dict):
            row_task, meta = row["task"], row["meta"]
        problems.append(Problem(pid, text, str(answer), row_task, meta))
    if not problems and limit != 0:  # an empty file or `[]`: a run on no problems would look like a run
        raise MRTUserError(f"{path}: no problems in it (an empty file, or an empty JSON array)")
    return problems


def save_problems(problems: Iterable[Problem], path: str | Path) -> Path:
    """Write problems as JSONL (id, problem, answer, task, meta); `load_problems(path,
    id_field="id")` reads them back unchanged."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for p in problems:
            f.write(json.dumps(p.to_dict()) + "\n")
    return path
