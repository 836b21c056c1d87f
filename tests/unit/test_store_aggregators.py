"""The aggregator reaches the store, the sweep and the CLI: a vector made by one aggregator is never
served for another, a sweep folder refuses a resume with another, and a bad name is one line."""

import json

import pytest
import torch

import workbench.store as store
from workbench import WorkbenchError
from workbench.apps.cli.main import main
from workbench.apps.file_evaluation.plan import EvaluateOptions
from workbench.instructions import as_group, data_hash, make_pairs
from workbench.models import dtype_name
from workbench.store import cache_name, cached_vector, folder_file, vector_for, vectors_for
from workbench.sweep import SweepConfig, run_sweep
from workbench.vectors import InstructionVector

TINY = ["--model", "tiny-random"]
SWEEP = dict(
    model="tiny-random", instructions=("one_sentence",), layers=(1,), coefficients=(1.0,), n_train=4, n_prompts=1
)


def no_work(*args, **kwargs):
    raise AssertionError("recorded a vector that should have come from disk")


def test_each_aggregator_keeps_its_own_vector_in_a_results_folder(tmp_path, tiny, monkeypatch):
    mean = vector_for(tiny, "one_sentence", tmp_path, 4)
    first = vector_for(tiny, "one_sentence", tmp_path, 4, aggregator="first_component")
    assert (mean.aggregator, first.aggregator) == ("mean_difference", "first_component")
    assert not torch.allclose(mean.mean_diff, first.mean_diff)
    group = as_group("one_sentence")
    assert folder_file(tmp_path, group) == tmp_path / "vectors" / "one_sentence.safetensors"  # where it always was
    assert folder_file(tmp_path, group, "first_component").parent == tmp_path / "vectors" / "first_component"
    monkeypatch.setattr(store, "compute_vectors", no_work)  # both now come from disk, each its own
    again = vectors_for(tiny, ["one_sentence"], tmp_path, 4, aggregator="first_component")["one_sentence"]
    assert again.aggregator == "first_component" and torch.equal(again.mean_diff, first.mean_diff)
    assert torch.equal(vector_for(tiny, "one_sentence", tmp_path, 4).mean_diff, mean.mean_diff)


def test_a_vector_of_another_aggregator_in_the_default_place_is_recomputed(tmp_path, tiny):
    first = vector_for(tiny, "one_sentence", None, 4, aggregator="first_component")
    first.save(folder_file(tmp_path, as_group("one_sentence")))  # e.g. copied in by hand
    mean = vector_for(tiny, "one_sentence", tmp_path, 4)
    assert mean.aggregator == "mean_difference" and not torch.allclose(mean.mean_diff, first.mean_diff)
    assert InstructionVector.load(folder_file(tmp_path, as_group("one_sentence"))).aggregator == "mean_difference"


def test_the_user_cache_key_includes_the_aggregator(tmp_path, tiny, monkeypatch):
    group, pairs = as_group("lowercase"), make_pairs("lowercase", "train", limit=4)
    old_key = data_hash(  # the key from before the choice existed: the default's cached vectors still serve
        [tiny.name, dtype_name(tiny.dtype), json.dumps(group.spec(), sort_keys=True)]
        + [p.with_instruction + "\0" + p.without_instruction for p in pairs]
    )
    assert cache_name(tiny, group, pairs) == f"{group.slug}-{old_key}.safetensors"
    assert cache_name(tiny, group, pairs, "first_component") != cache_name(tiny, group, pairs)
    mean = cached_vector(tiny, "lowercase", n_pairs=4, root=tmp_path, progress=False)
    first = cached_vector(tiny, "lowercase", n_pairs=4, root=tmp_path, progress=False, aggregator="first_component")
    assert (mean.aggregator, first.aggregator) == ("mean_difference", "first_component")
    assert len(list(tmp_path.rglob("*.safetensors"))) == 2
    monkeypatch.setattr(store, "compute_vector", no_work)
    assert cached_vector(tiny, "lowercase", n_pairs=4, root=tmp_path, aggregator="first_component").aggregator == (
        "first_component"
    )
    assert cached_vector(tiny, "lowercase", n_pairs=4, root=tmp_path).aggregator == "mean_difference"


@pytest.mark.parametrize(
    "make",
    [
        lambda tiny, path: vectors_for(tiny, ["one_sentence"], path, 4, aggregator="pca"),
        lambda tiny, path: vector_for(tiny, "one_sentence", path, 4, aggregator="mean"),
        lambda tiny, path: cached_vector(tiny, "one_sentence", n_pairs=4, root=path, aggregator="PCA"),
        lambda tiny, path: SweepConfig(**SWEEP, aggregator="pca"),
        lambda tiny, path: EvaluateOptions(aggregator="pca"),
    ],
)
def test_an_unknown_aggregator_is_one_line_before_any_work(make, tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(store, "compute_vectors", no_work)
    monkeypatch.setattr(store, "compute_vector", no_work)
    with pytest.raises(WorkbenchError, match="unknown aggregator") as info:
        make(tiny, tmp_path)
    message = str(info.value)
    assert "\n" not in message and "mean_difference" in message and "first_component" in message
    assert not any(tmp_path.iterdir())


def test_a_sweep_folder_refuses_a_resume_with_another_aggregator(tmp_path, tiny):
    first = SweepConfig(**SWEEP, aggregator="first_component", max_new_tokens=2)
    run_sweep(tiny, first, tmp_path / "first", progress=False)
    saved = json.loads((tmp_path / "first" / "config.json").read_text())
    assert saved["aggregator"] == "first_component"
    vec = InstructionVector.load(folder_file(tmp_path / "first", as_group("one_sentence"), "first_component"))
    assert (
        vec.aggregator == "first_component"
        and not (tmp_path / "first" / "vectors" / "one_sentence.safetensors").exists()
    )
    with pytest.raises(WorkbenchError, match="another configuration .*aggregator"):
        run_sweep(tiny, SweepConfig(**SWEEP, max_new_tokens=2), tmp_path / "first", progress=False)
    run_sweep(tiny, SweepConfig(**SWEEP, max_new_tokens=2), tmp_path / "mean", progress=False)
    with pytest.raises(WorkbenchError, match="another configuration .*aggregator"):
        run_sweep(tiny, first, tmp_path / "mean", progress=False)


def test_a_folder_from_before_the_aggregator_resumes_as_mean_difference(tmp_path, tiny):
    config = SweepConfig(**SWEEP, max_new_tokens=2)
    run_sweep(tiny, config, tmp_path, progress=False)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "aggregator" not in saved  # exactly what a sweep wrote before the field existed
    (tmp_path / "units" / sorted(p.name for p in (tmp_path / "units").iterdir())[0]).unlink()
    assert len(run_sweep(tiny, config, tmp_path, progress=False).table) > 0


def test_evaluate_refuses_a_given_sweep_of_another_aggregator(tmp_path, tiny):
    run_sweep(tiny, SweepConfig(**SWEEP, max_new_tokens=2, aggregator="first_component"), tmp_path, progress=False)
    assert EvaluateOptions(sweep_dir=tmp_path, aggregator="first_component").aggregator == "first_component"
    with pytest.raises(WorkbenchError, match="first_component vectors, not mean_difference") as info:
        EvaluateOptions(sweep_dir=tmp_path)
    assert "\n" not in str(info.value)


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_cli_flag_reaches_the_vectors(tmp_path, capsys, monkeypatch):
    code, _, err = run(
        ["vectors", "json", *TINY, "--n-train", "4", "--aggregator", "first_component", "--out", str(tmp_path / "v")],
        capsys,
    )
    assert code == 0, err
    assert InstructionVector.load(tmp_path / "v" / "json.safetensors").aggregator == "first_component"
    asked = []
    real = store.cached_vector
    monkeypatch.setattr(
        store, "cached_vector", lambda *a, **k: asked.append(k["aggregator"]) or real(*a, **k, root=tmp_path / "cache")
    )
    steer = ["steer", "Explain tides.", *TINY, "--vector", "json@1", "--n-train", "4", "--max-new-tokens", "2"]
    assert run([*steer, "--aggregator", "first_component"], capsys)[0] == 0 and asked == ["first_component"]
    assert [InstructionVector.load(f).aggregator for f in (tmp_path / "cache").rglob("*.safetensors")] == [
        "first_component"
    ]
    sweep = ["sweep", "one_sentence", *TINY, "--layers", "1", "--coefficients", "1", "--n-prompts", "1"]
    sweep += [
        "--n-train",
        "4",
        "--max-new-tokens",
        "2",
        "--aggregator",
        "first_component",
        "--out",
        str(tmp_path / "s"),
    ]
    assert run(sweep, capsys)[0] == 0
    assert json.loads((tmp_path / "s" / "config.json").read_text())["aggregator"] == "first_component"
    assert (tmp_path / "s" / "vectors" / "first_component" / "one_sentence.safetensors").exists()


def test_the_cli_flag_reaches_evaluate(tmp_path, capsys, monkeypatch):
    import workbench.apps.file_evaluation.run as external

    data = tmp_path / "set.jsonl"
    record = {
        "key": 1,
        "prompt": "Describe rivers. Answer in one short sentence.",
        "prompt_without_instruction": "Describe rivers.",
    }
    record |= {
        "instruction_id_list": ["length_constraints:number_sentences"],
        "kwargs": [{"relation": "less than", "num_sentences": 2}],
    }
    data.write_text(json.dumps(record))
    seen = []

    def fake(model, data, out, options, plan):
        seen.append(options.aggregator)
        (tmp_path / "e").mkdir(exist_ok=True)
        (tmp_path / "e" / "report.md").write_text("report")

    monkeypatch.setattr(external, "evaluate_file", fake)
    argv = ["evaluate", *TINY, "--data", str(data), "--aggregator", "first_component", "--out", str(tmp_path / "e")]
    assert run(argv, capsys)[0] == 0 and seen == ["first_component"]


def test_a_bad_aggregator_on_the_command_line_is_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit:
        main(["vectors", "json", *TINY, "--aggregator", "pca", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "invalid choice: 'pca'" in err and err.count("\n") == 1, err
