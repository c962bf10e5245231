#!/usr/bin/env python3
"""Fails when two modules of a crate import each other (issue 20: one direction).

Usage: module_cycles.py SRC_DIR [SRC_DIR ...]

A module depends on another when its non-test code names it: `use crate::a::b`, `super::x`,
`crate::a::b::f(...)` in an expression, or a child module it declares (`mod x;`) used as
`x::...`. A parent that re-exports a child is such a dependency too, so a child must not reach
back into its parent: what both need lives in a module of its own. Only the code before the
first `#[cfg(test)]` of each file counts (unit tests may use whatever they test), without
its comments (a doc link is no dependency).
"""
import itertools
import os
import re
import sys


def modules(src_dir):
    found = {}
    for root, _, files in os.walk(src_dir):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            name = path[len(src_dir) + 1 : -3].replace("/mod", "").replace("/", "::")
            if name in ("lib", "main"):
                name = "crate"
            with open(path, encoding="utf-8") as text:
                code = text.read().split("#[cfg(test)]")[0]
            # Comments (doc links included) name modules without depending on them.
            found[name] = re.sub(r"//[^\n]*", "", code)
    return found


def expand(path):
    """`a::{b, c::{d}}` -> [`a::b`, `a::c::d`]."""
    m = re.match(r"^([\w:]*?)\{(.*)\}$", path, re.S)
    if not m:
        return [path]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, current = [], 0, ""
    for ch in inner:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for part in parts if part.strip() for p in expand(prefix + part.strip())]


def dependencies(mods):
    names = set(mods)
    deps = {}
    for module, src in mods.items():
        found = set()
        parent = "::".join(module.split("::")[:-1]) if module != "crate" else ""
        paths = []
        for use in re.findall(r"use\s+([^;]+);", src):
            paths += expand(re.sub(r"\s+", "", use))
        paths += re.findall(r"(?:crate|super)::[\w:]+", src)
        for p in paths:
            p = re.sub(r"\bas\b.*", "", p)
            if p.startswith("crate::"):
                parts = p[len("crate::") :].split("::")
            elif p.startswith("super::"):
                parts = (parent.split("::") if parent else []) + p[len("super::") :].split("::")
            else:
                continue
            for i in range(len(parts), 0, -1):
                candidate = "::".join(parts[:i])
                if candidate in names:
                    found.add(candidate)
                    break
        for child in re.findall(r"(?:pub(?:\([\w:]+\))?\s+)?mod\s+(\w+)\s*;", src):
            candidate = child if module == "crate" else f"{module}::{child}"
            if candidate in names and re.search(r"\b" + child + r"::", src):
                found.add(candidate)
        found.discard(module)
        deps[module] = found
    return deps


def main():
    cycles = []
    for src_dir in sys.argv[1:]:
        deps = dependencies(modules(src_dir))
        for a, b in itertools.combinations(sorted(deps), 2):
            if b in deps[a] and a in deps[b]:
                cycles.append(f"{src_dir}: {a} <-> {b}")
    for cycle in cycles:
        print(f"modules that import each other: {cycle}", file=sys.stderr)
    sys.exit(1 if cycles else 0)


if __name__ == "__main__":
    main()
