"""compile(): spec text -> a checked `Spec` (IR graph + training settings), or `DLError`: the entry point
(--set/--vary overrides, spec files, the portable text a run folder keeps) around compiler/assemble.py."""

from __future__ import annotations

from pathlib import Path

from .assemble import MAX_SPEC_BYTES, Spec, assemble
from .catalog import is_file_source
from .diagnostics import Diagnostic, DLError, Source
from .files import not_regular
from .overrides import apply_overrides

__all__ = ["Spec", "compile", "compile_file", "read_spec_text", "portable_text", "settings_key", "key_changes",
           "note_overrides", "absolute_data_name", "MAX_SPEC_BYTES"]


def compile(text: str, filename: str = "<spec>", overrides: list[str] | tuple = (), lint: bool = True,
            data_files: dict | None = None, max_memory: int | None = None) -> Spec:
    """Parse, lower, infer shapes, validate (and lint). Raises `DLError` with every error found.

    The compiler reads no data: a built-in set is checked against the model here, a data file by
    the runtime (runtime/data/check.py, which `dlc check` and training run). `data_files` records a
    run folder's data files (data.json) on the spec. A spec whose training would need more than
    `max_memory` bytes is refused (None: half the physical memory; 0: no limit)."""
    if not overrides:
        return assemble(text, filename, lint, data_files, max_memory)
    changed = apply_overrides(text, filename, overrides)
    try:
        spec = assemble(changed, filename, lint, data_files, max_memory)
    except DLError as e:
        raise _name_overrides(e, text, changed, overrides) from None
    spec.overridden = (text, tuple(overrides))
    return spec


def note_overrides(spec: Spec, e: DLError) -> DLError:
    """A later refusal (the runtime's: a device, data, weights) located on a line --set rewrote gets the
    same note as a compile error: the line shown is not the file's."""
    if spec.overridden is not None and e.source is spec.source:
        original, overrides = spec.overridden
        return _name_overrides(e, original, spec.source.text, overrides)
    return e


def _name_overrides(e: DLError, original: str, changed: str, overrides) -> DLError:
    """An error on a line that --set (or --vary) rewrote shows that line as rewritten: say so, and what
    the file itself says, so that the user does not look for text that is not in the file."""
    before, after = original.split("\n"), changed.split("\n")

    def written(o) -> str:  # as on the command line: --set K=V, --vary K=V, or --engine torch
        flag = getattr(o, "flag", "--set")
        return f"{flag} {o}" if flag in ("--set", "--vary") else f"{flag} {str(o).partition('=')[2]}"
    for d in e.diagnostics:
        line = d.span.line if d.span else 0
        if 0 < line <= len(after) and (line > len(before) or before[line - 1] != after[line - 1]):
            said = before[line - 1].strip() if line <= len(before) else None
            d.notes = list(d.notes) + [Diagnostic(
                "note", f"this line is as {' '.join(written(o) for o in overrides)} made it; "
                        + (f"the file says: {said}" if said is not None else "the file has no such line"))]
    return e


def absolute_data_name(written: str | None, base_dir: Path | None) -> str | None:
    """A data path as written in a spec, made absolute against the spec's folder (None: left as written,
    e.g. `~/x.csv`, already absolute, or a path no spec string can hold)."""
    if not written or written.startswith("~") or Path(written).is_absolute() or base_dir is None:
        return None
    path = str((base_dir / written).absolute())
    return None if ('"' in path and "'" in path) or "\n" in path else path


def portable_text(spec: Spec) -> str:
    """The spec's text with a relative data file path (and an IDX labels= path) written as the absolute
    path it resolves to, so that the text trains as written from any folder: what a run folder keeps
    as spec.dl, a search writes as best.dl, --vary writes per run. Nothing else changes."""
    text = _portable_init(spec)
    data = spec.settings.get("data")
    if data is None or not data.written or not is_file_source(data):
        return text
    overrides = []
    for key, written in (("data", data.kind), ("data.labels", data.get("labels"))):
        path = absolute_data_name(written, spec.base_dir)
        if path is not None:
            quote = '"' if '"' not in path else "'"
            overrides.append(f"{key}={quote}{path}{quote}")
    return apply_overrides(text, spec.source.filename, overrides) if overrides else text


def _portable_init(spec: Spec) -> str:
    """The text with `init from "RUN"`'s relative path written absolute (where the line says it)."""
    init = spec.settings.get("init")
    if init is None or init.kind_span is None:
        return spec.source.text
    path = absolute_data_name(init.kind, spec.base_dir)
    s = init.kind_span
    if path is None or s.end_col is None or '"' in path:
        return spec.source.text
    lines = spec.source.text.split("\n")
    line = lines[s.line - 1]
    lines[s.line - 1] = line[:s.col - 1] + f'"{path}"' + line[s.end_col - 1:]
    return "\n".join(lines)


def settings_key(spec: Spec, skip=frozenset()) -> dict[str, str]:
    """What a spec computes, as a flat table: every node of the graph (op, attributes, inputs) and every
    training setting's kind and values (`optimizer.lr`), but the `skip`ped keys. Comments, layout and
    the order of keys on a line do not enter it. Resume and search compare specs with it."""
    key = {f"model {n.name}": " ".join([n.op, *(f"{k}={v!r}" for k, v in sorted(n.attrs.items()))])
           + (f" <- {', '.join(n.inputs)}" if n.inputs else "") + (" frozen" if n.frozen else "")
           for n in spec.graph.nodes}
    for word, setting in sorted(spec.settings.items()):
        key[word] = str(setting.kind or "")
        if (word == "data" and setting.written and is_file_source(setting)) or word == "init":
            key[word] = absolute_data_name(setting.kind, spec.base_dir) or setting.kind_name  # however it is written
        key.update({f"{word}.{k}": repr(v) for k, v in sorted(setting.values.items()) if f"{word}.{k}" not in skip})
    return key


def key_changes(before: dict[str, str], after: dict[str, str], shown: int = 4) -> str | None:
    """'data.n (90 -> 91); train.seed (0 -> 1)' for the keys that differ, None when none does. A key
    absent from one side counts as unset ('None'): a setting added to dlc later, at its unset default,
    changes nothing in keys recorded before it existed."""
    changed = [k for k in sorted(set(before) | set(after)) if before.get(k, "None") != after.get(k, "None")]
    if not changed:
        return None
    text = "; ".join(f"{k} ({before.get(k, 'absent')} -> {after.get(k, 'absent')})" for k in changed[:shown])
    return text + (f" and {len(changed) - shown} more" if len(changed) > shown else "")


def compile_file(path: str | Path, overrides=(), lint: bool = True, data_files: dict | None = None,
                 max_memory: int | None = None) -> Spec:
    return compile(read_spec_text(path), str(path), overrides, lint, data_files, max_memory)


def read_spec_text(path: str | Path) -> str:
    """A spec file's text; a folder, a device, a file too large or not UTF-8 is a DLError naming it."""
    path = Path(path)
    kind = not_regular(path)
    if kind == "a folder":
        raise DLError(Diagnostic("error", f"{path} is a folder, not a spec"), Source("", str(path)))
    if kind:
        raise DLError(Diagnostic("error", f"{path} is {kind}, not a spec file", hint="pass a .dl file"),
                      Source("", str(path)))
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise DLError(Diagnostic("error", f"{path} is {size:,} bytes; a spec is at most {MAX_SPEC_BYTES:,}",
                                     hint="is this the right file?"), Source("", str(path)))
        text = path.read_text()
    except FileNotFoundError:
        raise DLError(Diagnostic("error", f"no such file: {path}"), Source("", str(path))) from None
    except IsADirectoryError:
        raise DLError(Diagnostic("error", f"{path} is a folder, not a spec"), Source("", str(path))) from None
    except UnicodeDecodeError as e:
        raise DLError(Diagnostic("error", f"{path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                                          f"{e.start})"), Source("", str(path))) from None
    except OSError as e:
        raise DLError(Diagnostic("error", f"cannot read {path}: {e.strerror or e}"), Source("", str(path))) from None
    return text
