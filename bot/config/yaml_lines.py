"""Line numbers for YAML fields, so errors can say ``file:line: field: reason``."""

from __future__ import annotations

import yaml

FieldPath = tuple[str | int, ...]
LineMap = dict[FieldPath, int]


def index_lines(node: yaml.Node | None) -> LineMap:
    """The 1-based line of every mapping key and sequence item in a composed YAML document."""
    lines: LineMap = {}
    if node is not None:
        _index(node, (), lines)
    return lines


def _index(node: yaml.Node, path: FieldPath, lines: LineMap) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), lines)


def line_of(path: FieldPath, lines: LineMap) -> int:
    """The line of the field, or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1
