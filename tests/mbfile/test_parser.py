"""The MiniBox file parser: both formats, every directive, every error."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from minibox.errors import ParseError
from minibox.mbfile.model import (Copy, Env, Healthcheck, MiniBoxFile, Pkg, Port, Run, User,
                                  Volume, Workdir)
from minibox.mbfile.parser import parse


def p(text: str) -> MiniBoxFile:
    return parse(textwrap.dedent(text).lstrip("\n"), "MiniBox")


def err(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        p(text)
    return info.value


def instrs(text: str, block: int = 0) -> list:
    return p(text).blocks[block].instructions


# ---- DAG format: structure ------------------------------------------------------------

NODE_EXAMPLE = """
    BASE alpine

    BLOCK runtime
        pkg nodejs
        pkg npm

    BLOCK source
        workdir /app
        copy . /app

    BLOCK deps
        NEED runtime
        NEED source
        auto-deps

    BLOCK config
        NEED deps
        env PORT=3000
        env NODE_ENV=production
        port 3000

    START node index.js
"""


def test_reference_node_example():
    mb = p(NODE_EXAMPLE)
    assert mb.base == "alpine" and mb.base_line == 1 and not mb.legacy
    assert [b.name for b in mb.blocks] == ["runtime", "source", "deps", "config"]
    assert [b.line for b in mb.blocks] == [3, 7, 11, 16]
    deps = mb.block("deps")
    assert deps.needs == ["runtime", "source"] and deps.bneeds == []
    assert deps.auto_deps and deps.auto_deps_line == 14
    assert mb.block("runtime").instructions == [Pkg(("nodejs",), 4), Pkg(("npm",), 5)]
    assert mb.block("source").instructions == [Workdir("/app", 8), Copy((".",), "/app", 9)]
    assert mb.block("config").instructions == [
        Env((("PORT", "3000"),), 18), Env((("NODE_ENV", "production"),), 19),
        Port(3000, "tcp", 20)]
    assert mb.start == ("/bin/sh", "-c", "node index.js") and mb.start_line == 22
    assert mb.healthcheck is None


def test_bneed_and_copy_from_example():
    mb = p("""
        BASE golang:1.21-alpine

        BLOCK builder
            run apk add --no-cache git
            workdir /src
            copy . .
            run CGO_ENABLED=0 go build -o /app/server .

        BLOCK runtime
            BNEED builder
            copy FROM=builder /app/server /server
            env PORT=8080

        START /server
    """)
    rt = mb.block("runtime")
    assert rt.needs == [] and rt.bneeds == ["builder"]
    assert rt.instructions[0] == Copy(("/app/server",), "/server", 11, from_block="builder")
    assert mb.block("builder").instructions[2] == Copy((".",), ".", 6)


def test_base_only_file_is_valid():
    mb = p("BASE postgres:15-alpine\n")
    assert mb.blocks == [] and mb.base == "postgres:15-alpine" and mb.start is None


def test_forward_references_are_fine():
    mb = p("""
        BASE a
        BLOCK x
            NEED y
        BLOCK y
            run true
    """)
    assert mb.block("x").needs == ["y"]


def test_keywords_are_case_insensitive_names_are_not():
    mb = p("""
        base Alpine
        block Build
            Run echo hi
        BLOCK build
            nEeD Build
        start X
    """)
    assert mb.base == "Alpine"
    assert [b.name for b in mb.blocks] == ["Build", "build"]
    assert mb.block("build").needs == ["Build"]


def test_copy_from_is_case_insensitive_both_ways():
    for spelling in ("FROM=b", "from=b", "From=b", "--from=b"):
        mb = p(f"""
            BASE a
            BLOCK b
                run true
            BLOCK c
                COPY {spelling} /x /y
        """)
        c = mb.block("c")
        assert c.instructions == [Copy(("/x",), "/y", 5, from_block="b")], spelling
        assert c.bneeds == ["b"]


def test_copy_from_does_not_duplicate_bneed():
    mb = p("""
        BASE a
        BLOCK b
            run true
        BLOCK c
            BNEED b
            COPY FROM=b /x /y
            COPY FROM=b /z /w
    """)
    assert mb.block("c").bneeds == ["b"]


def test_copy_from_a_needed_block_still_records_bneed():
    mb = p("""
        BASE a
        BLOCK b
            run true
        BLOCK c
            NEED b
            COPY FROM=b /x /y
    """)
    c = mb.block("c")
    assert c.needs == ["b"] and c.bneeds == ["b"] and c.deps == ["b"]


def test_need_several_names_and_duplicates():
    mb = p("""
        BASE a
        BLOCK x
        BLOCK y
        BLOCK z
            NEED x y
            NEED x
            BNEED y
    """)
    z = mb.block("z")
    assert z.needs == ["x", "y"] and z.bneeds == ["y"]


def test_comments_anywhere_and_hash_inside_line_is_text():
    mb = p("""
        # leading comment
        BASE a
            # indented comment before a block
        BLOCK b
        # unindented comment does not end the block
            run echo "#not a comment" # neither is this
          # another
            run true
    """)
    assert mb.block("b").instructions == [
        Run('echo "#not a comment" # neither is this', 6), Run("true", 8)]


def test_crlf_tabs_and_bom():
    text = "\ufeffBASE a\r\nBLOCK b\r\n\trun echo hi\r\n \tPKG curl\r\n"
    mb = parse(text)
    assert mb.block("b").instructions == [Run("echo hi", 3), Pkg(("curl",), 4)]


def test_any_leading_whitespace_is_indentation():
    mb = p("BASE a\nBLOCK b\n run x\n\t\trun y\n")
    assert [i.command for i in mb.block("b").instructions] == ["x", "y"]


def test_blank_lines_do_not_end_blocks():
    mb = p("BASE a\nBLOCK b\n\n\n    run x\n")
    assert mb.block("b").instructions == [Run("x", 5)]


# ---- continuation ---------------------------------------------------------------------

def test_continuation_joins_with_one_space_and_keeps_first_line():
    mb = p("""
        BASE a
        BLOCK b
            run apt-get update && \\
                apt-get install -y \\
                  curl
            run next
    """)
    assert mb.block("b").instructions == [
        Run("apt-get update && apt-get install -y curl", 3), Run("next", 6)]


def test_continuation_skips_comment_lines_and_ends_at_blank_or_eof():
    mb = p("BASE a\nBLOCK b\n  run a \\\n  # note\n  b\n  run c \\\n\n  run d \\")
    assert mb.block("b").instructions == [Run("a b", 3), Run("c", 6), Run("d", 8)]


def test_continuation_of_top_level_lines():
    mb = p("BASE \\\n  alpine\nSTART node \\\n   index.js\n")
    assert mb.base == "alpine" and mb.start == ("/bin/sh", "-c", "node index.js")
    assert mb.start_line == 3


def test_errors_on_continued_lines_point_at_first_line():
    e = err("BASE a\nBLOCK b\n  copy \\\n   onlyone\n")
    assert e.line_no == 3 and "copy \\" in e.line_text


# ---- RUN ------------------------------------------------------------------------------

def test_run_keeps_whitespace_verbatim():
    assert instrs('BASE a\nBLOCK b\n  run   echo "a   b"\t c\n') == [Run('echo "a   b"\t c', 3)]


def test_run_json_form():
    (r,) = instrs('BASE a\nBLOCK b\n  RUN ["echo", "hello world", "$HOME"]\n')
    assert r.argv == ("echo", "hello world", "$HOME")
    assert r.command == "echo 'hello world' '$HOME'"


def test_run_shell_form_starting_with_bracket_test():
    (r,) = instrs("BASE a\nBLOCK b\n  RUN [ -f /x ] && echo yes\n")
    assert r.argv is None and r.command == "[ -f /x ] && echo yes"


@pytest.mark.parametrize("bad", ['["a", ', '[1, 2]', '["a", 1]', '[]', '[""]', '["a" "b"]',
                                 '[' * 5000 + ']' * 5000])
def test_run_malformed_json(bad):
    e = err(f"BASE a\nBLOCK b\n  RUN {bad}\n")
    assert e.line_no == 3 and "JSON" in e.message


# ---- START / HEALTHCHECK --------------------------------------------------------------

def test_start_exec_form():
    mb = p('BASE a\nSTART ["node", "index.js"]\n')
    assert mb.start == ("node", "index.js")


def test_start_json_error():
    e = err('BASE a\nSTART ["node", index.js]\n')
    assert "malformed JSON" in e.message and e.line_no == 2


def test_two_starts():
    e = err("BASE a\nSTART x\nBLOCK b\n  run y\nstart z\n")
    assert e.line_no == 5 and "line 2" in e.message and "START" in e.message


def test_start_needs_command():
    assert "needs an argument" in err("BASE a\nSTART\n").message


def test_healthcheck_defaults_and_shell_form():
    mb = p("BASE a\nHEALTHCHECK curl -f http://localhost:3000/health\n")
    assert mb.healthcheck == Healthcheck(
        argv=("/bin/sh", "-c", "curl -f http://localhost:3000/health"), line=2)


def test_healthcheck_options():
    mb = p('BASE a\nHEALTHCHECK --interval=10 --timeout=1m30s --retries=5 '
           '--start-period=2h ["wget", "-qO-", "x"]\n')
    h = mb.healthcheck
    assert (h.interval, h.timeout, h.retries, h.start_period) == (10, 90, 5, 7200)
    assert h.argv == ("wget", "-qO-", "x")


@pytest.mark.parametrize("opt,value", [("interval", "30s"), ("interval", "1m"),
                                       ("timeout", "1h1m1s"), ("start-period", "0")])
def test_healthcheck_durations(opt, value):
    expect = {"30s": 30, "1m": 60, "1h1m1s": 3661, "0": 0}[value]
    h = p(f"BASE a\nHEALTHCHECK --{opt}={value} x\n").healthcheck
    assert getattr(h, opt.replace("-", "_")) == expect


@pytest.mark.parametrize("opts,needle", [
    ("--interval=abc", "not a duration"), ("--interval=0", "at least 1"),
    ("--interval=1.5s", "not a duration"), ("--retries=0", "retries"),
    ("--retries=x", "retries"), ("--timeout=", "needs a value"), ("--timeout", "needs a value"),
    ("--color=red", "unknown option"), ("--interval=30s", "needs a command"),
    ("--interval=٣", "not a duration"), ("--interval=" + "9" * 5000, "not a duration"),
])
def test_healthcheck_bad_options(opts, needle):
    e = err(f"BASE a\nHEALTHCHECK {opts}\n" if needle == "needs a command"
            else f"BASE a\nHEALTHCHECK {opts} curl x\n")
    assert needle in e.message and e.line_no == 2


def test_two_healthchecks():
    e = err("BASE a\nHEALTHCHECK x\nHEALTHCHECK y\n")
    assert e.line_no == 3 and "line 2" in e.message


# ---- ENV ------------------------------------------------------------------------------

def test_env_pairs_with_quotes():
    (e,) = instrs("""BASE a\nBLOCK b\n  ENV A=1 B="x y" C='z w' D=a\\ b E= F="q\\"t"\n""")
    assert e.items == (("A", "1"), ("B", "x y"), ("C", "z w"), ("D", "a b"), ("E", ""),
                       ("F", 'q"t'))


def test_env_key_value_form_keeps_rest_of_line():
    (e,) = instrs("BASE a\nBLOCK b\n  ENV GREETING hello   big  world\n")
    assert e == Env((("GREETING", "hello   big  world"),), 3)


def test_env_key_value_form_with_equals_in_value():
    (e,) = instrs("BASE a\nBLOCK b\n  ENV URL postgres://db:5432/app?x=1\n")
    assert e.items == (("URL", "postgres://db:5432/app?x=1"),)


@pytest.mark.parametrize("line,needle", [
    ("ENV", "needs an argument"), ("ENV ONLYKEY", "has no value"),
    ("ENV 1A=x", "not a valid variable name"), ("ENV A-B=x", "not a valid variable name"),
    ("ENV =x", "not a valid variable name"), ('ENV A="x', "no closing quotation"),
    ("ENV A=1 B", "not KEY=VALUE"), ("ENV A=1 # note", "not KEY=VALUE"),
    ("ENV 9 value", "not a valid variable name"),
])
def test_env_errors(line, needle):
    e = err(f"BASE a\nBLOCK b\n  {line}\n")
    assert needle in e.message and e.line_no == 3


# ---- COPY, PKG, PORT, USER, VOLUME, WORKDIR, AUTO-DEPS ---------------------------------

def test_copy_many_sources_and_json_form():
    a, b = instrs('BASE a\nBLOCK b\n  COPY a.txt b/*.js /dest/\n'
                  '  COPY ["my file", "other", "/dest dir/"]\n')
    assert a == Copy(("a.txt", "b/*.js"), "/dest/", 3)
    assert b == Copy(("my file", "other"), "/dest dir/", 4)


def test_copy_from_json_form():
    mb = p('BASE a\nBLOCK x\nBLOCK b\n  COPY FROM=x ["/a b", "/c"]\n')
    assert mb.block("b").instructions == [Copy(("/a b",), "/c", 4, from_block="x")]


@pytest.mark.parametrize("line,needle", [
    ("COPY", "needs an argument"), ("COPY onlyone", "got 1 argument"),
    ("COPY FROM=x /a", "got 1 argument"), ("COPY FROM= /a /b", "needs a block name"),
    ("COPY FROM=bad/name /a /b", "not a valid block name"), ('COPY ["a", ""]', "empty path"),
])
def test_copy_errors(line, needle):
    e = err(f"BASE a\nBLOCK x\nBLOCK b\n  {line}\n")
    assert needle in e.message and e.line_no == 4


def test_pkg_all_args_and_versions_kept():
    (i,) = instrs("BASE a\nBLOCK b\n  pkg curl git@2.40.1 py3-pip so:libc.musl-x86_64.so.1\n")
    assert i == Pkg(("curl", "git@2.40.1", "py3-pip", "so:libc.musl-x86_64.so.1"), 3)


@pytest.mark.parametrize("arg", ["curl;rm", "-x", "$(evil)", "a b#c", "`x`"])
def test_pkg_rejects_non_package_words(arg):
    assert "not a package name" in err(f"BASE a\nBLOCK b\n  pkg {arg}\n").message


def test_ports():
    i = instrs("BASE a\nBLOCK b\n  port 80 53/udp 443/TCP 65535\n")
    assert i == [Port(80, "tcp", 3), Port(53, "udp", 3), Port(443, "tcp", 3),
                 Port(65535, "tcp", 3)]


@pytest.mark.parametrize("arg", ["0", "65536", "99999", "abc", "80/sctp", "-1", "80/", "1e3"])
def test_bad_ports(arg):
    e = err(f"BASE a\nBLOCK b\n  port {arg}\n")
    assert "not a port" in e.message and e.hint


def test_user_forms():
    for u in ("app", "1000", "app:app", "1000:1000"):
        assert instrs(f"BASE a\nBLOCK b\n  user {u}\n") == [User(u, 3)]


@pytest.mark.parametrize("arg,needle", [("", "needs an argument"), ("a b", "exactly one"),
                                        ("a:b:c", "not a user"), (":g", "not a user")])
def test_user_errors(arg, needle):
    assert needle in err(f"BASE a\nBLOCK b\n  user {arg}\n").message


def test_volumes():
    i = instrs('BASE a\nBLOCK b\n  volume /data /var/log\n  VOLUME ["/x y"]\n')
    assert i == [Volume("/data", 3), Volume("/var/log", 3), Volume("/x y", 4)]


def test_volume_must_be_absolute():
    assert "absolute" in err("BASE a\nBLOCK b\n  volume data\n").message


def test_workdir():
    assert instrs("BASE a\nBLOCK b\n  workdir /app\n  WORKDIR sub\n") == [
        Workdir("/app", 3), Workdir("sub", 4)]


def test_workdir_errors():
    assert "needs an argument" in err("BASE a\nBLOCK b\n  workdir\n").message
    e = err("BASE a\nBLOCK b\n  workdir /a /b\n")
    assert "exactly one" in e.message


def test_auto_deps_takes_no_args():
    assert "no arguments" in err("BASE a\nBLOCK b\n  auto-deps now\n").message


# ---- errors: structure ----------------------------------------------------------------

def test_unknown_directive_did_you_mean():
    e = err("BASE a\nBLCOK b\n")
    assert e.line_no == 2 and "unknown directive" in e.message and "BLOCK" in e.hint
    assert "RUN" in err("BASE a\nBLOCK b\n  RUNN x\n").hint
    assert "START" in err("BASE a\nCMD x\n").hint
    assert "PORT" in err("BASE a\nBLOCK b\n  EXPOSE 80\n").hint
    assert "BASE" in err("BASE a\nFROM b\n").hint


def test_unknown_directive_message_shows_file_line_and_text():
    e = err("BASE a\nBLOCK b\n    frobnicate now\n")
    text = e.render()
    assert text.startswith("MiniBox:3: unknown directive 'frobnicate'")
    assert "3 |     frobnicate now" in text


def test_unindented_instruction_inside_block():
    e = err("BASE a\nBLOCK b\nRUN x\n")
    assert e.line_no == 3 and "inside a BLOCK" in e.message and "'b'" in e.hint


def test_unindented_instruction_before_any_block():
    e = err("BASE a\nRUN x\n")
    assert e.line_no == 2 and "BLOCK" in e.hint


def test_indented_instruction_before_any_block():
    e = err("BASE a\n    RUN x\nBLOCK b\n")
    assert e.line_no == 2 and "outside any BLOCK" in e.message


def test_indented_instruction_after_start_ends_block():
    e = err("BASE a\nBLOCK b\n  run x\nSTART y\n  run z\n")
    assert e.line_no == 5 and "START on line 4" in e.hint


@pytest.mark.parametrize("kw", ["BASE x", "BLOCK c", "START y", "HEALTHCHECK z"])
def test_indented_top_level_keyword(kw):
    e = err(f"BASE a\nBLOCK b\n    {kw}\n")
    assert e.line_no == 3 and "must not be indented" in e.message


def test_unknown_need_did_you_mean():
    e = err("BASE a\nBLOCK builder\nBLOCK b\n  NEED biulder\n")
    assert e.line_no == 4 and "unknown block 'biulder'" in e.message
    assert "builder" in e.hint


@pytest.mark.parametrize("how", ["NEED", "BNEED", "COPY FROM="])
def test_unknown_references(how):
    line = "COPY FROM=nope /a /b" if how == "COPY FROM=" else f"{how} nope"
    e = err(f"BASE a\nBLOCK b\n  {line}\n")
    assert e.line_no == 3 and "unknown block 'nope'" in e.message and how in e.message


def test_cycle_is_printed_and_points_at_a_need_line():
    e = err("""
        BASE a
        BLOCK a
            NEED b
        BLOCK b
            BNEED c
        BLOCK c
            COPY FROM=a /x /y
    """)
    assert "a -> b -> c -> a" in e.message and e.line_no == 3


def test_two_block_cycle():
    e = err("BASE a\nBLOCK x\n  NEED y\nBLOCK y\n  NEED x\n")
    assert "x -> y -> x" in e.message and e.line_no == 3


@pytest.mark.parametrize("line", ["NEED b", "BNEED b", "COPY FROM=b /x /y"])
def test_self_dependency(line):
    e = err(f"BASE a\nBLOCK b\n  {line}\n")
    assert "itself" in e.message and e.line_no == 3


def test_duplicate_block():
    e = err("BASE a\nBLOCK b\n  run x\nBLOCK b\n")
    assert e.line_no == 4 and "line 2" in e.message


def test_two_bases():
    e = err("BASE a\nBASE b\n")
    assert e.line_no == 2 and "line 1" in e.message


def test_missing_base():
    e = err("BLOCK b\n  run x\n")
    assert e.line_no == 1 and "no BASE" in e.message and "BASE" in e.hint


@pytest.mark.parametrize("text", ["", "\n\n  \n", "# only a comment\n", "\ufeff"])
def test_empty_file(text):
    with pytest.raises(ParseError) as info:
        parse(text)
    e = info.value
    assert e.line_no == 1 and e.message.startswith("MiniBox:1: the file ")
    assert ("comments" if "#" in text else "empty") in e.message and "BASE" in e.hint


@pytest.mark.parametrize("line,needle", [
    ("BASE", "needs an argument"), ("BASE a b", "exactly one"),
])
def test_base_args(line, needle):
    assert needle in err(f"{line}\n").message


@pytest.mark.parametrize("name", ["-x", ".x", "a/b", "a:b", "é", "x#y"])
def test_bad_block_names(name):
    e = err(f"BASE a\nBLOCK {name}\n")
    assert "not a valid block name" in e.message and e.line_no == 2


def test_a_block_named_only_by_a_comment_has_no_name():
    assert "BLOCK needs an argument" in err("BASE a\nBLOCK # x\n").message


def test_trailing_comments_after_word_arguments():
    mb = p("""
        BASE alpine:3.20   # the base
        BLOCK runtime      # what runs
            pkg nodejs npm # the runtime
            port 3000/tcp  # http
        BLOCK source # the app
            workdir /app   # where it lives
            copy . /app    # all of it
            volume /data   # kept
        BLOCK deps
            NEED runtime      # runtime layers ARE included
            NEED source       # source layers ARE included
            user app   # not root
            auto-deps        # detects package.json
        BLOCK final
            BNEED deps #deps ran
            run echo "#not a comment" # left to the shell
            copy ["a #b", "/c"]
    """)
    assert mb.base == "alpine:3.20"
    runtime, source, deps, final = mb.blocks
    assert runtime.name == "runtime" and runtime.instructions == [
        Pkg(("nodejs", "npm"), 3), Port(3000, "tcp", 4)]
    assert source.instructions == [Workdir("/app", 6), Copy((".",), "/app", 7),
                                   Volume("/data", 8)]
    assert deps.needs == ["runtime", "source"] and deps.auto_deps
    assert deps.instructions == [User("app", 12)]
    assert final.bneeds == ["deps"]
    assert final.instructions == [Run('echo "#not a comment" # left to the shell', 16),
                                  Copy(("a #b",), "/c", 17)]


def test_the_specifications_need_vs_bneed_example_parses():
    spec = Path("/work/shared/spec/minibox-file-reference.txt")
    if not spec.exists():
        pytest.skip("the specification is not on this machine")
    text = spec.read_text()
    start = text.index("BLOCK deps\n    NEED runtime      #")
    example = "BASE alpine\nBLOCK runtime\n    pkg nodejs\nBLOCK source\n    copy . /app\n" + \
        text[start:text.index("\nRUN\n", start)]
    mb = parse(example)
    assert mb.block("deps").needs == ["runtime", "source"] and mb.block("deps").auto_deps
    assert mb.block("final").bneeds == ["deps"]


def test_a_hash_in_env_is_part_of_the_value():
    assert instrs("BASE a\nBLOCK b\n  env K v # not a comment\n") == [
        Env((("K", "v # not a comment"),), 3)]
    e = err("BASE a\nBLOCK b\n  env K=v # comment\n")
    assert "not KEY=VALUE" in e.message and "own" in e.hint


def test_a_one_megabyte_line_is_refused_naming_it():
    e = err("BASE a\nBLOCK b\n  run echo " + "x" * (1 << 20) + "\n")
    assert e.line_no == 3 and e.message.startswith("MiniBox:3: the instruction is 1048585 "
                                                   "characters long; at most 65536")
    assert len(e.render()) < 1000 and "script" in e.hint
    joined = "BASE a\nBLOCK b\n  run echo \\\n" + ("y" * 40000 + " \\\n") * 2 + "  end\n"
    assert err(joined).line_no == 3


@pytest.mark.parametrize("kw", ["NEED", "BNEED", "RUN", "COPY", "WORKDIR", "ENV", "USER", "PKG",
                                "PORT", "VOLUME"])
def test_block_directives_missing_arguments(kw):
    e = err(f"BASE a\nBLOCK b\n  {kw}\n")
    assert "needs an argument" in e.message and e.line_no == 3 and e.hint


def test_block_directive_missing_name():
    assert "needs an argument" in err("BASE a\nBLOCK\n").message


def test_nul_byte_and_bad_unicode():
    e = err("BASE a\nBLOCK b\n  run x\x00y\n")
    assert e.line_no == 3 and "NUL" in e.message and "\x00" not in e.render()
    e = err("BASE a\nBLOCK \udcff\n")
    assert e.line_no == 2 and "UTF-8" in e.message
    e.render().encode("utf-8")


def test_bytes_input():
    assert parse(b"BASE a\n").base == "a"
    with pytest.raises(ParseError) as info:
        parse(b"BASE a\n\xff\xfe\n")
    assert info.value.line_no == 2


def test_control_characters_are_escaped_in_messages():
    e = err("BASE a\nBLOCK b\n  \x1b[31mevil x\n")
    assert "\x1b" not in e.render()


# ---- legacy format --------------------------------------------------------------------

def test_legacy_one_line():
    mb = p("FROM mongo:7\n")
    assert mb.legacy and mb.base == "mongo:7"
    assert [b.name for b in mb.blocks] == ["main"] and mb.blocks[0].instructions == []


def test_legacy_every_alias():
    mb = p("""
        # old style
        BOX node:18
          ADD-PACKAGE git curl
        INSTALL-DEPS
        CLONE-REPO https://github.com/x/y
        RUN-COMMAND npm   ci
        RUN echo done
        GOTO-FOLDER /app
        WORKDIR /app2
        SET-ENVIRONMENT NODE_ENV production
        ENV A=1
        IMPORT-FILE a.txt /a.txt
        COPY b /b
        GRAB-ALL
        SYNC-PACK
        PKG jq
        LAUNCH node index.js
        HEALTHCHECK --interval=5 curl x
    """)
    assert mb.legacy and mb.base == "node:18" and mb.base_line == 2
    (main,) = mb.blocks
    assert main.name == "main" and main.line == 3
    assert main.auto_deps and main.auto_deps_line == 4
    assert main.instructions == [
        Pkg(("git", "curl"), 3), Run("git clone https://github.com/x/y", 5),
        Run("npm   ci", 6), Run("echo done", 7), Workdir("/app", 8), Workdir("/app2", 9),
        Env((("NODE_ENV", "production"),), 10), Env((("A", "1"),), 11),
        Copy(("a.txt",), "/a.txt", 12), Copy(("b",), "/b", 13),
        Copy((".",), "/app", 14), Copy((".",), "/app", 15), Pkg(("jq",), 16)]
    assert mb.start == ("/bin/sh", "-c", "node index.js")
    assert mb.healthcheck.interval == 5


@pytest.mark.parametrize("base_kw", ["BOX", "FROM", "START-WITH", "from", "start-with"])
def test_legacy_base_aliases(base_kw):
    mb = p(f"{base_kw} alpine\nCMD [\"sh\"]\n")
    assert mb.legacy and mb.base == "alpine" and mb.start == ("sh",)


def test_legacy_indentation_irrelevant_and_start_honoured():
    mb = p("    FROM a\n\tRUN x\nSTART y\n")
    assert mb.blocks[0].instructions == [Run("x", 2)] and mb.start_line == 3


def test_format_is_decided_by_first_base_like_keyword():
    assert not p("# c\nBASE a\n").legacy
    assert p("# c\nFROM a\n").legacy


def test_legacy_rejects_blocks_with_hint():
    e = err("FROM a\nBLOCK b\n")
    assert "legacy" in e.message and "line 1" in e.hint and "BASE" in e.hint


def test_legacy_errors():
    assert "needs an argument" in err("FROM\n").message          # the reference panics here
    assert "needs an argument" in err("FROM a\nGOTO-FOLDER\n").message
    assert "got 1 argument" in err("FROM a\nIMPORT-FILE x\n").message
    assert "needs an argument" in err("FROM a\nCLONE-REPO\n").message
    e = err("FROM a\nEXPOSE 80\n")
    assert "unknown directive" in e.message and e.line_no == 2
    assert "a second" in err("FROM a\nBOX b\n").message
    assert "itself" in err("FROM a\nCOPY FROM=main /a /b\n").message


def test_legacy_start_with_is_not_start():
    mb = p("START-WITH alpine\n")
    assert mb.base == "alpine" and mb.start is None


# ---- odd but valid --------------------------------------------------------------------

def test_block_names_allowed_characters():
    mb = p("BASE a\nBLOCK A1_b.c-d\nBLOCK 9lives\n  NEED A1_b.c-d\n")
    assert mb.block("9lives").needs == ["A1_b.c-d"]


def test_unicode_in_arguments_is_kept():
    assert instrs("BASE a\nBLOCK b\n  run echo héllo ✓\n") == [Run("echo héllo ✓", 3)]


def test_path_is_used_in_errors():
    with pytest.raises(ParseError) as info:
        parse("BASE a\nBLCOK b\n", path="proj/MiniBox")
    assert info.value.path == "proj/MiniBox" and str(info.value).startswith("proj/MiniBox:2:")


def test_model_types():
    mb = p(NODE_EXAMPLE)
    assert isinstance(mb, MiniBoxFile) and all(isinstance(b.line, int) for b in mb.blocks)
