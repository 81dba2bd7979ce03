#!/usr/bin/env python3
"""Checks the relative links of README.md, ARCHITECTURE.md and docs/*.md.

Every `](target)` and `](target#anchor)` that is not a URL must name a file or directory that exists (relative to
the file the link is in), and every anchor must be a heading of the target Markdown file, slugged as GitHub does
(lower case, spaces to '-', punctuation other than '-' and '_' dropped, repeated slugs numbered -1, -2, ...).
Links inside fenced code blocks and inline code are ignored. Prints each broken link; exits 1 if there is one.

    python3 tests/tools/check_doc_links.py [REPO_ROOT]
"""
import os
import re
import sys

LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")


def slug(text):
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def lines_outside_fences(path):
    fenced = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line):
                fenced = not fenced
                continue
            if not fenced:
                yield number, line


def anchors(path):
    seen = {}
    found = set()
    for _, line in lines_outside_fences(path):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def files(root):
    out = [os.path.join(root, n) for n in ("README.md", "ARCHITECTURE.md")]
    docs = os.path.join(root, "docs")
    if os.path.isdir(docs):
        out += sorted(os.path.join(docs, n) for n in os.listdir(docs) if n.endswith(".md"))
    return [p for p in out if os.path.isfile(p)]


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    cache = {}
    broken = 0
    checked = 0
    for path in files(root):
        rel = os.path.relpath(path, root)
        for number, line in lines_outside_fences(path):
            for target in LINK.findall(INLINE_CODE.sub("", line)):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                    continue  # http:, https:, mailto: ...
                checked += 1
                file_part, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
                if not os.path.exists(dest):
                    print(f"{rel}:{number}: {target}: no such file {os.path.relpath(dest, root)}")
                    broken += 1
                    continue
                if anchor:
                    if not dest.endswith(".md"):
                        print(f"{rel}:{number}: {target}: an anchor into a file that is not Markdown")
                        broken += 1
                        continue
                    if dest not in cache:
                        cache[dest] = anchors(dest)
                    if anchor not in cache[dest]:
                        print(f"{rel}:{number}: {target}: no heading #{anchor} in {os.path.relpath(dest, root)}")
                        broken += 1
    print(f"check_doc_links: {checked} relative links in {len(files(root))} files, {broken} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
