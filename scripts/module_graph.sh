#!/usr/bin/env bash
# The import graph between the `tideflow` crate's modules (docs/ARCHITECTURE.md "Layers"): a
# node per top-level module of src/ (`runtime` for src/runtime.rs, `checkpoint` for everything
# under src/checkpoint/), an edge where a file of one module names another module through a
# `crate::` path (or a `super::` path that leaves its module): in a `use`, a type, a call.
# Comments, doc links and string literals do not count; names re-exported at the crate root
# (`crate::Error`) count as an edge to the module they come from. Prints one line per edge with
# the first place it occurs, and exits non-zero if the edges form a cycle, naming its modules.
# CI runs it (.ci/run).
#
#   scripts/module_graph.sh            # src/ of the `tideflow` crate
#   scripts/module_graph.sh DIR        # the source directory of another crate
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "${1:-src}" <<'PY'
import os
import re
import sys

root = sys.argv[1]


def strip(text):
    """Removes comments and string/char literals, keeping the line structure."""

    def blank(match):
        return re.sub(r"[^\n]", " ", match.group(0))

    pattern = re.compile(
        r"/\*.*?\*/|//[^\n]*|r(#*)\".*?\"\1|b?\"(?:\\.|[^\"\\])*\"|b?'(?:\\.|[^'\\])'", re.S
    )
    return pattern.sub(blank, text)


def top_module(path):
    """The top-level module a file belongs to (None for the crate roots)."""
    rel = os.path.relpath(path, root).split(os.sep)
    if rel == ["lib.rs"] or rel == ["main.rs"]:
        return None
    return rel[0][: -len(".rs")] if len(rel) == 1 else rel[0]


def module_path(path):
    """The module path of a file, as a list of names."""
    rel = os.path.relpath(path, root)[: -len(".rs")].split(os.sep)
    return rel[:-1] if rel[-1] == "mod" else rel


files = []
for directory, _, names in os.walk(root):
    files += [os.path.join(directory, n) for n in names if n.endswith(".rs")]
files.sort()
modules = {m for m in map(top_module, files) if m}

# What the crate root re-exports: `pub use runtime::{execute, Config};` -> Config: runtime.
reexports = {}
lib = os.path.join(root, "lib.rs")
if os.path.exists(lib):
    for match in re.finditer(r"^pub use\s+([a-z_]+)::([^;]+);", strip(open(lib).read()), re.M):
        for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", match.group(2)):
            reexports.setdefault(name, match.group(1))

PATH = re.compile(r"(?<![\w$])(crate|super)((?:\s*::\s*[A-Za-z_]\w*)*)(\s*::\s*\{)?")

edges = {}
for path in files:
    here = top_module(path)
    if here is None:
        continue
    text = strip(open(path, encoding="utf-8").read())
    depth = len(module_path(path))
    # Inline modules (`mod tests { ... }`) add a level that `super` climbs first.
    opens = []
    level, stack = 0, []
    for match in re.finditer(r"\bmod\s+\w+\s*\{|[{}]", text):
        token = match.group(0)
        if token != "{" and token != "}":
            stack.append(level)
            opens.append([match.end(), len(text)])
            level += 1
        elif token == "{":
            level += 1
        else:
            level -= 1
            if stack and stack[-1] == level:
                stack.pop()
                for span in reversed(opens):
                    if span[1] == len(text):
                        span[1] = match.end()
                        break
    for match in PATH.finditer(text):
        if re.search(r"\bin\s*$", text[max(0, match.start() - 8) : match.start()]):
            continue  # pub(in crate::...)
        group = ""
        if match.group(3):  # `::{...}`: up to the matching brace
            end, depth = match.end(), 1
            while end < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            group = "{" + text[match.end() : end]
        segments = [s.strip() for s in match.group(2).split("::") if s.strip()]
        if match.group(1) == "super":
            nested = sum(1 for start, end in opens if start <= match.start() < end)
            ups = 1
            while segments and segments[0] == "super":
                ups += 1
                segments.pop(0)
            if ups - nested < depth:
                continue  # still inside this top-level module
        if not segments and not group:
            continue
        if segments:
            heads = [segments[0]]
        else:  # `crate::{a::X, Y}`: the first name of each item at the top of the group
            depth, item, heads = 0, "", []
            for char in group + ",":
                depth += {"{": 1, "}": -1}.get(char, 0)
                if char == "," and depth <= 1 or depth == 0:
                    heads += re.findall(r"^[\s{]*([A-Za-z_]\w*)", item)[:1]
                    item = ""
                elif depth >= 1:
                    item += char
        for head in heads:
            target = head if head in modules else reexports.get(head)
            if target and target != here and target in modules:
                line = text.count("\n", 0, match.start()) + 1
                edges.setdefault((here, target), f"{path}:{line}")

graph = {}
for a, b in edges:
    graph.setdefault(a, set()).add(b)
for (a, b), where in sorted(edges.items()):
    print(f"{a} -> {b}  ({where})")

# Strongly connected components (Tarjan): any with more than one module is a cycle.
index, low, on_stack, stack, components = {}, {}, set(), [], []


def connect(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for succ in sorted(graph.get(node, ())):
        if succ not in index:
            connect(succ)
            low[node] = min(low[node], low[succ])
        elif succ in on_stack:
            low[node] = min(low[node], index[succ])
    if low[node] == index[node]:
        component = []
        while True:
            member = stack.pop()
            on_stack.discard(member)
            component.append(member)
            if member == node:
                break
        if len(component) > 1:
            components.append(sorted(component))


for node in sorted(modules):
    if node not in index:
        connect(node)
print(f"{len(modules)} modules, {len(edges)} import edges, {len(components)} cycle(s)")
for component in components:
    print("import cycle between modules: " + ", ".join(component), file=sys.stderr)
    for (a, b), where in sorted(edges.items()):
        if a in component and b in component:
            print(f"  {a} -> {b}  ({where})", file=sys.stderr)
sys.exit(1 if components else 0)
PY
