"""Module-level dependency graph of one crate from its `crate::`/`super::` paths (non-test code, comments dropped),
and the cycles in it. Usage: python3 tests/tools/module_cycles.py agent/src $(find agent/src -name "*.rs" ! -name main.rs
! -name cli.rs ! -name commands.rs ! -name outcome.rs); the same with core/src, checks/src, or the binary's files."""
import os, re, sys
root = sys.argv[1]           # e.g. agent/src
files = sys.argv[2:]         # crate root files: lib.rs or main.rs + the files of that crate
aliases = {a: "edge::" + a for a in ("dns", "pid1", "probe", "systemd")} if "agent" in root else {}
aliases.update({a: "pure::" + a for a in ("node_role", "plan", "role_file", "weave")} if "agent" in root else {})
def modname(path):
    rel = os.path.relpath(path, root)[:-3]
    parts = rel.split('/')
    if parts[-1] in ('mod', 'lib', 'main'): parts = parts[:-1]
    return '::'.join(parts)
mods = {modname(f): f for f in files}
def strip_tests(text):
    i = text.find('#[cfg(test)]')
    return text if i < 0 else text[:i]
def resolve(segs):
    # longest prefix that is a module
    for n in range(len(segs), 0, -1):
        cand = '::'.join(segs[:n])
        if cand in mods: return cand
    return None
edges = {}
for m, f in mods.items():
    if f.endswith('tests.rs'): continue
    text = strip_tests(open(f).read())
    text = re.sub(r'//[^\n]*', '', text)  # comments and docs
    out = set()
    # expand `use crate::{a, b::c}` roughly: take every path token
    for mt in re.finditer(r'\b(crate|super|self)((?:::\{?[A-Za-z_][A-Za-z0-9_]*)+)', text):
        head, rest = mt.group(1), mt.group(2)
        segs = [s.lstrip('{') for s in rest.split('::') if s]
        base = [] if head == 'crate' else (m.split('::') if m else [])
        if head == 'super':
            isdir = f.endswith('mod.rs')
            base = base[:-1] if base else []
            while segs and segs[0] == 'super': segs = segs[1:]; base = base[:-1]
        if head == 'crate' and segs and segs[0] in aliases: segs = aliases[segs[0]].split('::') + segs[1:]
        full = base + segs
        # braces: `use crate::{a, b}` -> the regex only sees `crate::{a`; also catch the group
        t = resolve(full)
        if t is not None and t != m and t != '' and not m.startswith(t + '::') :
            out.add(t)
    # group uses: use crate::{x, y::z}
    for g in re.finditer(r'\buse (crate|super)::\{([^;]*)\};', text):
        base = [] if g.group(1) == 'crate' else (m.split('::')[:-1] if m else [])
        for item in re.split(r',\s*', g.group(2)):
            segs = [s for s in item.strip().split('::') if s and s[0].isalpha()]
            if not segs: continue
            if g.group(1) == 'crate' and segs[0] in aliases: segs = aliases[segs[0]].split('::') + segs[1:]
            t = resolve(base + segs)
            if t is not None and t != m and t != '' and not m.startswith(t + '::'): out.add(t)
    edges[m] = out
# cycles: pairs and SCCs (Tarjan)
idx, low, st, on, sccs, c = {}, {}, [], set(), [], [0]
def sc(v):
    idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in list(edges): 
    if v not in idx: sc(v)
pairs = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in edges.get(b, ())})
print('modules:', len(edges), 'edges:', sum(len(v) for v in edges.values()))
print('mutual pairs:', pairs)
print('cycles (SCCs > 1):', sccs)
