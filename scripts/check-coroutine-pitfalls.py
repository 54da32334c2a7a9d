#!/usr/bin/env python3
"""Refuses two ways of writing a coroutine that g++ 12 (Debian 12's compiler) miscompiles.

1. `co_await` inside the condition of an if / while / do-while / for / switch. When the
   function body has no declaration at its top level, g++ 12 lays the frame out wrongly
   (GCC bug 106188, fixed in g++ 13): the ramp writes parameters where the body does not
   read them, and the coroutine later jumps to garbage.
2. `co_await` inside a braced initializer (`T x{a, co_await f()}`, `return {co_await f()}`).
   For an aggregate, g++ 12 destroys the members built before the suspension twice: a
   std::string member is a double free.

Declaring the awaited result first is always safe:

    if (auto ec = co_await op()) ...        // a declaration in the condition: fine
    auto ec = co_await op(); if (ec) ...    // fine
    auto n = co_await count(); pair p{tag, n};

Usage: check-coroutine-pitfalls.py [ROOT]   (exit 1 and one line per finding)
       check-coroutine-pitfalls.py --self-test
"""
import os
import re
import sys

DIRS = ("core", "actors", "protocols", "ipc", "apps", "tests", "docs")
EXTS = (".cpp", ".hpp", ".h", ".cc", ".md")
KEYWORD = re.compile(r"\b(if|while|for|switch)\s*(?:constexpr\s*)?\(")
DECL = re.compile(r"^\s*(?:const\s+)?(?:auto|bool|int|std::[\w:<>]+|[\w:]+(?:<[^()]*>)?)\s*[&*]?\s*(?:\[[^\]]*\]|\w+)\s*(?:=|\{)")


def strip_comments_and_strings(text):
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def condition_at(text, open_paren):
    depth, i = 0, open_paren
    while i < len(text):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[open_paren + 1 : i]
        i += 1
    return ""


def top_level_split(cond):
    parts, depth, cur = [], 0, []
    for ch in cond:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == ";" and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def findings(path, text):
    code = strip_comments_and_strings(text)
    if path.endswith(".md"):  # only the C++ inside fenced blocks, at its own line numbers
        masked = ["\n" if ch == "\n" else " " for ch in text]
        for b in re.finditer(r"```(?:cpp|c\+\+)\n(.*?)```", text, re.S):
            masked[b.start(1) : b.end(1)] = strip_comments_and_strings(b.group(1))
        code = "".join(masked)
    for m in KEYWORD.finditer(code):
        cond = condition_at(code, m.end() - 1)
        if "co_await" not in cond:
            continue
        parts = top_level_split(cond)
        if m.group(1) == "for":
            # for (init; cond; step): init may declare; cond and step may not await
            # (a range-for's range expression has no ';' and is checked as a whole).
            risky = parts[1:] if len(parts) == 3 else ([] if ":" in cond and DECL.match(cond.split(":")[0] + "=") else parts)
        else:
            last = parts[-1]
            risky = [] if DECL.match(last) else [last]
        if any("co_await" in p for p in risky):
            line = code.count("\n", 0, m.start()) + 1
            yield line, m.group(1)
    # do { ... } while (co_await ...);
    for m in re.finditer(r"}\s*while\s*\(", code):
        if "co_await" in condition_at(code, m.end() - 1):
            yield code.count("\n", 0, m.start()) + 1, "do-while"
    yield from braced_initializers(code)


# What may precede the `{` of a block (a function or lambda body, a statement block, a class
# or namespace body) rather than of a braced initializer.
BLOCK_BEFORE = re.compile(
    r"(?:\belse|\bdo|\btry|\bmutable|\bnoexcept|\bconst|\boverride|\bfinal|->\s*[\w:<>, ]+|"
    r"\b(?:struct|class|union)\s+\w+(?:\s*:[^{;]*)?|\bnamespace\s*\w*|\benum\s+(?:class\s+)?\w+(?:\s*:\s*[\w:]+)?|"
    r"\bextern\s+\"C\")\s*$")


def braced_initializers(code):
    """A co_await directly inside a braced initializer (not in a nested block or lambda)."""
    stack = []  # [offset, is_block, holds_co_await]
    for i, ch in enumerate(code):
        if ch == "{":
            j = i - 1
            while j >= 0 and code[j] in " \t\n":
                j -= 1
            is_block = j < 0 or code[j] in ");{}:]" or BLOCK_BEFORE.search(code[max(0, j - 120) : j + 1]) is not None
            stack.append([i, is_block, False])
        elif ch == "}" and stack:
            start, is_block, awaits = stack.pop()
            if awaits and not is_block:
                yield code.count("\n", 0, start) + 1, "braced initializer"
        elif stack and code.startswith("co_await", i) and (i == 0 or not (code[i - 1].isalnum() or code[i - 1] == "_")):
            stack[-1][2] = True


# Each form g++ 12 was seen to miscompile (a standalone asio program crashed, or destroyed an
# aggregate's member twice), and forms it compiles correctly; --self-test checks the scanner
# tells them apart.
BAD = [
    "while (!co_await f()) {}",
    "for (;;) { if (co_await f()) break; }",
    "if (co_await f() == errc::closed) return;",
    "if (x > 0 && co_await f()) g();",
    "do {} while (!co_await f());",
    "for (; !co_await f();) {}",
    "switch (co_await f()) {}",
    "pair p{tracked(3), co_await f()};",
    "pair p = {tracked(3), co_await f()};",
    "g(pair{tracked(3), co_await f()});",
    "co_return result{co_await f()};",
    "return {co_await f(), 1};",
]
GOOD = [
    "if (auto ec = co_await f()) g();",
    "if (const bool done = co_await f()) g();",
    "auto ec = co_await f(); if (ec) g();",
    "while (n > 0) co_await f();",
    "for (int i = 0; i < 3; ++i) co_await f();",
    "for (auto& r : rs) (void)co_await r->flush();",
    "if (x) co_await f(); // if (co_await g())",
    'log("if (co_await x)");',
    "task<void> h() { auto n = co_await f(); pair p{t, n}; }",
    "spawn(ex, [&]() -> task<void> { co_await f(); });",
    "spawn(ex, [&] { return g(); });",
    "struct s : base { task<void> h() override { co_await f(); } };",
    "if (x) { y = co_await f(); } else { co_await g(); }",
    "namespace n { task<void> h() { co_await f(); } }",
]


def self_test():
    failed = 0
    for sample in BAD:
        if not list(findings("x.cpp", sample)):
            print(f"self-test: not flagged: {sample}")
            failed += 1
    for sample in GOOD:
        if list(findings("x.cpp", sample)):
            print(f"self-test: flagged by mistake: {sample}")
            failed += 1
    print("self-test:", "failed" if failed else f"ok ({len(BAD)} flagged, {len(GOOD)} passed)")
    return 1 if failed else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    bad = 0
    for d in DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            for f in sorted(files):
                if not f.endswith(EXTS):
                    continue
                p = os.path.join(dirpath, f)
                with open(p, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
                for line, kind in findings(p, text):
                    bad += 1
                    where = "a braced initializer" if kind == "braced initializer" else f"the condition of `{kind}`"
                    print(f"{os.path.relpath(p, root)}:{line}: co_await in {where}: declare the result first "
                          "(g++ 12 miscompiles this; see this script's header)")
    if bad:
        print(f"{bad} finding(s)")
        return 1
    print("no co_await in a condition or a braced initializer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
