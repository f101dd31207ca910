"""Print the configuration reference (every key of every command's schema, its type, default and comment)
as Markdown: ``python scripts/config_reference.py``; ``--write`` puts it into docs/configuration.md between
the ``<!-- keys -->`` markers. tests/config/test_reference.py fails when the two differ."""

from __future__ import annotations

import dataclasses
import io
import tokenize
import typing
from pathlib import Path

from jko_cli import config as C
from jko_cli.tasks.precheck import compose_command

COMMANDS = {"train": C.TrainConfig, "evaluate": C.EvaluateConfig, "sample": C.SampleConfig, "score": C.ScoreConfig}


def field_comments() -> dict[tuple[str, str], str]:
    """(class name, field name) → the comment on the field's line (or the comment line above it)."""
    source = Path(C.__file__).read_text()
    comments: dict[tuple[str, str], str] = {}
    cls, pending, line_field = None, "", {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.string == "class" and tok.start[1] == 0:
            cls = None
        if tok.type == tokenize.NAME and cls is None and tok.start[1] == 6 and tok.line.startswith("class "):
            cls = tok.string
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.line.lstrip().startswith("def "):
            pending = ""
        if cls and tok.type == tokenize.NAME and tok.start[1] == 4 and ":" in tok.line.split("#")[0] \
                and not tok.line.lstrip().startswith(("def", "@", "return", "_check")):
            line_field[tok.start[0]] = tok.string
            if pending:
                comments[(cls, tok.string)] = pending
                pending = ""
        if tok.type == tokenize.COMMENT and cls:
            text = tok.string.lstrip("#").strip()
            if tok.start[0] in line_field:
                comments[(cls, line_field[tok.start[0]])] = text
            elif tok.start[1] == 4:
                pending = f"{pending} {text}".strip()
    return comments


def _type(tp) -> str:
    text = str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")
    return text.replace("NoneType", "None").replace("jko_cli.config.", "")


def rows(schema, prefix: str, comments: dict, cfg) -> list[str]:
    from omegaconf import OmegaConf

    out = []
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += rows(tp, f"{prefix}{f.name}.", comments, cfg)
            continue
        key = f"{prefix}{f.name}"
        parent, _, leaf = key.rpartition(".")
        if OmegaConf.is_missing(OmegaConf.select(cfg, parent) if parent else cfg, leaf):
            default = "(required)"
        else:
            value = OmegaConf.select(cfg, key)
            value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            default = "null" if value is None else value
        note = comments.get((schema.__name__, f.name), "").replace("|", "\\|")
        out.append(f"| `{key}` | {_type(tp).replace('|', 'or')} | `{default}` | {note} |")
    return out


def reference() -> str:
    comments = field_comments()
    parts = []
    for command, schema in COMMANDS.items():
        parts += [f"### `jko-flow {command}`", "", "| key | type | default | meaning |", "|---|---|---|---|",
                  *rows(schema, "", comments, compose_command(command)), ""]
    return "\n".join(parts)


def write(doc: Path) -> None:
    head, rest = doc.read_text().split("<!-- keys -->\n", 1)
    tail = rest.split("<!-- /keys -->", 1)[1]
    doc.write_text(f"{head}<!-- keys -->\n{reference().rstrip()}\n<!-- /keys -->{tail}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:
        write(Path(__file__).resolve().parents[1] / "docs" / "configuration.md")
    else:
        print(reference())
