#!/usr/bin/env python3
"""List top-level module -> module edges from `use crate::...` / `crate::x::` paths in
crates/ephemeral/src and report cycles. Usage: scripts/module_cycles.py [--sub] [src_dir]

--sub uses two-level granularity (e.g. signal::sink) instead of top-level modules.
Test code (after a `#[cfg(test)]` line) is ignored."""
import os, re, sys

args = [a for a in sys.argv[1:] if not a.startswith('--')]
sub = '--sub' in sys.argv
src = args[0] if args else os.path.join(os.path.dirname(__file__), '..', 'crates', 'ephemeral', 'src')
src = os.path.normpath(src)

def module_of(path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ('mod', 'lib'):
        rel = rel[:-1]
    return rel

def key(parts):
    if not parts:
        return 'lib'
    return '::'.join(parts[:2] if sub else parts[:1])

# names re-exported at the crate root (`pub use module::{A, B}` in lib.rs) resolve to their module
reexport = {}
lib = re.sub(r'//[^\n]*', '', open(os.path.join(src, 'lib.rs')).read())
for m in re.finditer(r'pub use ([a-z_]+)::(\{[^}]*\}|[A-Za-z_]+);', lib):
    for name in re.findall(r'[A-Za-z_][A-Za-z0-9_]*', m.group(2)):
        reexport[name] = m.group(1)

edges = {}
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith('.rs'):
            continue
        p = os.path.join(root, f)
        me = module_of(p)
        text = open(p).read()
        cut = re.search(r'^\s*#\[cfg\(test\)\]', text, re.M)
        if cut:
            text = text[:cut.start()]
        # strip comments
        text = re.sub(r'//[^\n]*', '', text)
        here = key(me)
        # expand `use crate::{a::..., b}` groups
        targets = set()
        for m in re.finditer(r'crate::\{([^;]*?)\};', text, re.S):
            depth = 0; cur = ''; items = []
            for ch in m.group(1):
                if ch == '{': depth += 1
                if ch == '}': depth -= 1
                if ch == ',' and depth == 0:
                    items.append(cur); cur = ''
                else:
                    cur += ch
            items.append(cur)
            for it in items:
                it = it.strip()
                if it:
                    targets.add(tuple(re.split(r'::', re.sub(r'\{.*', '', it, flags=re.S).strip())))
        for m in re.finditer(r'crate((?:::[A-Za-z_][A-Za-z0-9_]*)+)', text):
            targets.add(tuple(m.group(1).split('::')[1:]))
        # super:: paths
        for m in re.finditer(r'\b((?:super::)+)([A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)', text):
            ups = m.group(1).count('super')
            base = me[:len(me) - ups] if len(me) >= ups else []
            targets.add(tuple(base + m.group(2).split('::')))
        for t in targets:
            t = [x for x in t if x]
            if not t:
                continue
            # keep only module-ish prefix: first segment (and second for --sub when it is a module dir/file)
            if t[0] in reexport:
                t = [reexport[t[0]]] + t
            parts = t[:2] if sub else t[:1]
            if sub and len(t) >= 2:
                cand = os.path.join(src, t[0], t[1])
                if not (os.path.isdir(cand) or os.path.isfile(cand + '.rs')):
                    parts = t[:1]
            there = '::'.join(parts)
            if not os.path.exists(os.path.join(src, parts[0] + '.rs')) and not os.path.isdir(os.path.join(src, parts[0])):
                continue  # an item of lib.rs, e.g. crate::BoxError
            if there != here:
                edges.setdefault(here, set()).add(there)

for a in sorted(edges):
    print(f"{a} -> {', '.join(sorted(edges[a]))}")

# Tarjan SCC
index = {}; low = {}; stack = []; on = set(); sccs = []; n = [0]
nodes = set(edges) | {b for v in edges.values() for b in v}
sys.setrecursionlimit(10000)
def strong(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1:
            sccs.append(sorted(comp))
for v in sorted(nodes):
    if v not in index:
        strong(v)
if sccs:
    print("\nCYCLES (strongly connected components):")
    for c in sccs:
        print("  " + " <-> ".join(c))
    sys.exit(1)
print("\nno cycle")
