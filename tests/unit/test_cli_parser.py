"""The command line's spelling, apart from running anything: every subcommand's --help, the argument
types' one-line refusals, the one place a ``--vector`` setting becomes a steering spec, the bench's sizes."""

import argparse

import pytest

from workbench.apps.bench import BenchConfig
from workbench.apps.cli.arguments import count, layers, names, share
from workbench.apps.cli.commands import steer_at
from workbench.apps.cli.main import SUBCOMMANDS, build_parser, main


@pytest.mark.parametrize("command", [[], *([name] for name in SUBCOMMANDS)])
def test_every_help_works(command, capsys):
    with pytest.raises(SystemExit) as exit:
        main([*command, "--help"])
    assert exit.value.code == 0 and "usage: workbench" in capsys.readouterr().out


def test_every_subcommand_runs_its_own_command():
    parser = build_parser()
    argv = {"export": ["v.safetensors", "--out", "x.gguf"], "export-model": ["smollm2-135m-instruct", "--out", "x"]}
    for name in SUBCOMMANDS:
        positional = argv.get(name, ["hi", "--vector", "json@1"] if name == "steer" else [])
        positional = positional or (["json"] if name in ("vectors", "sweep", "analyze") else [])
        args = parser.parse_args([name, *positional])
        assert args.func.__name__ == "cmd_" + name.replace("-", "_")


def test_argument_types_refuse_in_words():
    assert names("language:response_language[language=de],json") == ("language:response_language[language=de]", "json")
    assert layers("3, 1") == (3, 1) and count("2") == 2 and share("-1") == -1
    for parse, text in ((count, "0"), (count, "x"), (layers, ""), (layers, "-1"), (share, "1.5"), (share, "nan")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_bad_flags_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["sweep", "json", "--n-prompts", "0"])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and "at least 1" in err and "--help" in err


def same(a, b) -> bool:
    return (a.layer, a.mode, a.positions, a.coefficient) == (b.layer, b.mode, b.positions, b.coefficient) and bool(
        (a.direction == b.direction).all()
    )


def test_steer_at_is_the_only_mode_switch(tiny_vector):
    project = steer_at(tiny_vector, 2, "project", absolute=True, positions="prompt")
    assert project.mode == "project" and same(project, tiny_vector.steer(2, mode="project", positions="prompt"))
    assert same(steer_at(tiny_vector, 2, 1.5), tiny_vector.steer(2, 1.5))
    assert same(steer_at(tiny_vector, 2, 1.5, absolute=True), tiny_vector.steer(2, 1.5, absolute=True))
    assert not same(steer_at(tiny_vector, 2, 1.5, absolute=True), tiny_vector.steer(2, 1.5))


def test_bench_config_quick_shrinks_every_size():
    full, quick = BenchConfig("tiny-random"), BenchConfig("tiny-random", quick=True)
    assert (quick.new_tokens, quick.repeats, quick.repeats_batched) == (16, 1, 1)
    assert (full.new_tokens, full.repeats, full.repeats_batched) == (64, 3, 2)
    assert quick.peak_sizes == (8, 32) and quick.sweep_grid[0] < full.sweep_grid[0]
    with pytest.raises(AttributeError):
        quick.quick = False  # frozen


def test_vector_settings_name_any_operator_that_needs_no_coefficient():
    from workbench import WorkbenchError
    from workbench.apps.cli.commands import _parse_spec

    assert _parse_spec("title@3:ablate") == ("title", 3, "ablate")
    assert _parse_spec("title@3:project") == ("title", 3, "project")
    assert _parse_spec("title@3:-1.5") == ("title", 3, -1.5)
    with pytest.raises(WorkbenchError, match="use a number or one of project, ablate"):
        _parse_spec("title@3:add")  # add scales a number: it is spelled as the number
