"""The ``roar`` and ``sanity`` command-line contracts (and their siblings), end to end on tiny tasks."""

from __future__ import annotations

import json

from chaosmining.cli import main


def _json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_roar_prints_per_method_fraction_score_and_spread(capsys):
    out = _json(
        capsys,
        [
            "roar",
            "--task",
            "toy16",
            "--methods",
            "saliency,random",
            "--fractions",
            "0.25,0.5",
            "--repeats",
            "2",
            "--n-train",
            "400",
            "--n-test",
            "400",
            "--json",
        ],
    )
    assert set(out["methods"]) == {"saliency", "random"}
    assert [p["fraction"] for p in out["methods"]["saliency"]] == [0.25, 0.5]
    assert all(p["spread"] >= 0 for p in out["methods"]["random"])
    assert out["retrain"] is True and out["keep"] is False


def test_roar_flags_no_retrain_keep_and_distractor(capsys):
    out = _json(
        capsys,
        [
            "roar",
            "--task",
            "toy16",
            "--distractor",
            "zero",
            "--no-retrain",
            "--keep",
            "--methods",
            "oracle",
            "--fractions",
            "0.25",
            "--n-train",
            "200",
            "--n-test",
            "200",
            "--json",
        ],
    )
    assert out["retrain"] is False and out["keep"] is True and out["evaluation"] == "kar"
    assert out["task"]["distractor"] == "zero" and out["curves"] == {}


def test_sanity_prints_per_method_and_layer_each_similarity(capsys):
    out = _json(
        capsys,
        [
            "sanity",
            "--task",
            "formula:7",
            "--n-train",
            "300",
            "--n-test",
            "40",
            "--epochs",
            "50",
            "--test",
            "independent",
            "--methods",
            "saliency,input_x_gradient",
            "--samples",
            "16",
            "--json",
        ],
    )
    assert set(out["methods"]) == {"saliency", "input_x_gradient"}
    layers = out["steps"]
    assert len(layers) == 3 and all(set(out["methods"]["saliency"][s]) == {"spearman_abs", "spearman"} for s in layers)


def test_human_output_and_bad_input(capsys):
    assert (
        main(
            [
                "roar",
                "--task",
                "toy16",
                "--methods",
                "oracle",
                "--fractions",
                "0.25",
                "--n-train",
                "100",
                "--n-test",
                "100",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "ROAR (fraction removed), retrained" in text and "0.25:" in text
    assert main(["roar", "--task", "toy16", "--postprocess", "gaussian"]) == 2
    assert "'postprocess' parameter of RoarConfig" in capsys.readouterr().err
    assert main(["sanity", "--task", "formula:99"]) == 2
    assert "formula" in capsys.readouterr().err.lower()


def test_a_roar_bundle_reruns(tmp_path, capsys):
    assert (
        main(
            [
                "roar",
                "--task",
                "toy16",
                "--methods",
                "saliency",
                "--fractions",
                "0.25",
                "--n-train",
                "100",
                "--n-test",
                "100",
                "--json",
                "--export",
                str(tmp_path),
            ]
        )
        == 0
    )
    first = json.loads(capsys.readouterr().out)
    assert (tmp_path / "bundle.json").is_file() and (tmp_path / "roar_curves.html").is_file()
    again = _json(capsys, ["rerun", str(tmp_path / "bundle.json"), "--json"])
    assert again["methods"] == first["methods"]
    # the evaluation tasks run on the CPU: a GPU request is refused with a message, for a run and a re-run alike
    assert main(["rerun", str(tmp_path / "bundle.json"), "--device", "cuda"]) == 2
    assert "'--device' argument of the evaluation commands" in capsys.readouterr().err
    assert main(["roar", "--task", "toy16", "--device", "cuda"]) == 2
    assert "'--device' argument of the evaluation commands" in capsys.readouterr().err


def test_every_config_setting_of_road_blur_and_sanity_is_reachable_from_the_command_line():
    import argparse

    from chaosmining.commands import evaluate as ev

    def parsed(add, build, argv):
        p = argparse.ArgumentParser()
        add(p)
        return build(p.parse_args(argv))

    assert parsed(ev._road_arguments, ev._road_config, ["--aggregate", "signed"]).aggregate == "signed"
    assert parsed(ev._road_arguments, ev._road_config, []).aggregate == "abs"
    assert parsed(ev._blur_arguments, ev._blur_config, ["--road-samples", "50"]).road_samples == 50
    assert parsed(ev._sanity_arguments, ev._sanity_config, ["--true-scale", "2.5"]).true_scale == 2.5
    assert parsed(ev._sanity_arguments, ev._sanity_config, []).true_scale == 5.0
