"""Load YAML while remembering the line of every key, so errors can point at it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from admitd.errors import ConfigError

__all__ = [
    "MAX_DEPTH",
    "YamlDocument",
    "load_yaml",
    "plain_value_from_text",
    "yaml_document_from_text",
]

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Plain data (dicts, lists, scalars) plus the 1-based line of each key path."""

    file: str
    data: object
    lines: dict[KeyPath, int]
    origins: dict[KeyPath, str] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def error(self, path: KeyPath, message: str, fix: str | None = None) -> ConfigError:
        key = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
        origin = next(
            (self.origins[path[:n]] for n in range(len(path), 0, -1) if path[:n] in self.origins),
            None,
        )
        if origin is not None:
            return ConfigError(message, file=origin, key=key or None, fix=fix)
        return ConfigError(
            message, file=self.file, key=key or None, line=self.line_of(path), fix=fix
        )


def load_yaml(path: Path) -> YamlDocument:
    """Parse one YAML file safely: no tags, no anchors or aliases, bounded nesting."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=str(path)) from None
    return yaml_document_from_text(text, str(path))


MAX_DEPTH = 64  # policy and config files nest ~6 levels; deeper overflows the composer
_NO_ALIASES_FIX = (
    "write the value out in full (a policy file's `defaults:` shares keys between routes);"
    " quote a string that starts with & or *"
)


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases and bounds the nesting depth.

    An alias bomb ("billion laughs") expands exponentially: 219 bytes took 35 s
    to load, and a reload used to stall the server. Anchors are refused with
    aliases, since one is useless without the other. Each error names the line.
    """

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file = file
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ConfigError(
                "YAML anchors and aliases are not allowed (&name, *name, <<: *name)",
                file=self.file,
                line=line,
                fix=_NO_ALIASES_FIX,
            )
        if self.depth >= MAX_DEPTH:
            raise ConfigError(f"nested more than {MAX_DEPTH} levels", file=self.file, line=line)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# What PyYAML's constructors raise for a tagged value they cannot read, besides YAMLError:
# `!!int x` ValueError, `!!bool maybe` KeyError, `!!timestamp maybe` AttributeError (its
# regex did not match, and it reads the match anyway).
_CONSTRUCTOR_ERRORS = (
    yaml.YAMLError, ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError,
)  # fmt: skip
_UNREADABLE_FIX = (
    "write a value of the kind the key wants (e.g. true, 10, a string); a tag such as"
    " !!bool must fit its value, so drop the tag or quote the value"
)


def plain_value_from_text(text: str, origin: str) -> object:
    """One YAML value (e.g. an environment variable's), under the same rules as a file."""
    loader = _PlainLoader(text, origin)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=origin) from None
    except _CONSTRUCTOR_ERRORS as exc:
        raise ConfigError(
            f"cannot read this value ({type(exc).__name__})", file=origin, fix=_UNREADABLE_FIX
        ) from None
    finally:
        loader.dispose()


def _compose(text: str, file: str) -> yaml.Node | None:
    loader = _PlainLoader(text, file)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def yaml_document_from_text(text: str, file: str) -> YamlDocument:
    try:
        node = _compose(text, file)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}", file=file, line=line
        ) from None
    lines: dict[KeyPath, int] = {}
    data = _plain(node, (), lines, file) if node is not None else None
    return YamlDocument(file, data, lines)


def _plain(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: str) -> object:
    if isinstance(node, yaml.MappingNode):
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in result:
                raise ConfigError(
                    "duplicate key", file=file, key=key, line=key_node.start_mark.line + 1
                )
            lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _plain(value_node, (*path, key), lines, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        items: list[object] = []
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            items.append(_plain(item, (*path, index), lines, file))
        return items
    return _scalar(node, path, file)


def _scalar(node: yaml.Node, path: KeyPath, file: str) -> object:
    """A scalar's value as SafeLoader types it (`10`, `true`, `null`, strings).

    Built from the node itself, so an empty value, a tag on nothing (`!!int`) or on a value
    it cannot read (`!!bool maybe`) is a ConfigError naming the line, never a traceback.
    """
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except _CONSTRUCTOR_ERRORS as exc:
        where = ".".join(str(part) for part in path) or None
        raise ConfigError(
            f"cannot read this value ({type(exc).__name__})",
            file=file,
            key=where,
            line=node.start_mark.line + 1,
            fix=_UNREADABLE_FIX,
        ) from None
